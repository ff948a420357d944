// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title A freely mintable ERC-20 for development chains only
/// @notice Anyone can mint any amount: never deploy it where the token has value.
contract TestToken is ERC20 {
    constructor() ERC20("meterroot test token", "MRT") {}

    /// @notice Mint `amount` tokens to `to`; open to everyone.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
