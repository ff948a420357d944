// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {Base64} from "@openzeppelin/contracts/utils/Base64.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

/// @notice ERC-5192: minimal soulbound NFTs.
interface IERC5192 {
    event Locked(uint256 tokenId);
    event Unlocked(uint256 tokenId);

    function locked(uint256 tokenId) external view returns (bool);
}

/// @title meterroot Counter NFT
/// @notice One non-transferable token per consumer (ERC-5192, always locked), minted by the
/// settlement registry on the consumer's first deposit. The registry updates its counters as
/// claims pay: wei paid, claims, the highest batch claimed from. `tokenURI` is computed on chain
/// as base64 JSON; every change emits ERC-4906 `MetadataUpdate`.
/// @dev Counters are keyed by consumer in one storage word (token id included), so the
/// registry's update is one read and one write, no owner lookup; a token's owner is its consumer
/// for good, since it cannot move.
contract CounterNFT is ERC721, IERC4906, IERC5192 {
    using Strings for uint256;

    struct Counter {
        uint32 tokenId;
        uint32 claims;
        uint64 lastBatch;
        uint128 weiPaid;
    }

    /// @notice The registry that deployed this contract: the only minter and updater.
    address public immutable registry;
    /// @notice Tokens minted so far; ids run from 1.
    uint32 public totalMinted;

    mapping(address consumer => Counter) private _counters;

    error NotRegistry(address caller);
    error TokenLocked(uint256 tokenId);

    constructor() ERC721("meterroot counter", "MRC") {
        registry = msg.sender;
    }

    modifier onlyRegistry() {
        if (msg.sender != registry) revert NotRegistry(msg.sender);
        _;
    }

    // ---------------------------------------------------------------------- registry hooks

    /// @notice Mint `consumer`'s token unless it has one; returns its id.
    function mintFor(address consumer) external onlyRegistry returns (uint256 tokenId) {
        return _ensureToken(consumer);
    }

    /// @notice Count a claim that paid `amount` wei from `consumer`'s deposit through `batch`.
    function recordClaim(address consumer, uint256 amount, uint64 batch) external onlyRegistry {
        Counter memory counter = _counters[consumer];
        if (counter.tokenId == 0) {
            counter.tokenId = uint32(_ensureToken(consumer));
        }
        counter.weiPaid += uint128(amount); // the registry pays at most 2^128 - 1 in all (committed totals)
        counter.claims += 1;
        if (batch > counter.lastBatch) counter.lastBatch = batch;
        _counters[consumer] = counter;
        emit MetadataUpdate(counter.tokenId);
    }

    function _ensureToken(address consumer) private returns (uint256) {
        uint32 existing = _counters[consumer].tokenId;
        if (existing != 0) return existing;
        uint32 tokenId = ++totalMinted;
        _counters[consumer].tokenId = tokenId;
        _mint(consumer, tokenId); // not _safeMint: a consumer contract need not accept ERC-721
        emit Locked(tokenId);
        return tokenId;
    }

    // ------------------------------------------------------------------------------- views

    /// @notice `consumer`'s token id (0: none yet) and counters.
    function countersOf(address consumer)
        external
        view
        returns (uint256 tokenId, uint256 weiPaid, uint256 claims, uint64 lastBatch)
    {
        Counter memory c = _counters[consumer];
        return (c.tokenId, c.weiPaid, c.claims, c.lastBatch);
    }

    /// @notice ERC-5192: every token is locked for good.
    function locked(uint256 tokenId) external view returns (bool) {
        _requireOwned(tokenId);
        return true;
    }

    /// @notice On-chain JSON metadata: `data:application/json;base64,...`.
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        address consumer = _requireOwned(tokenId);
        Counter memory c = _counters[consumer];
        bytes memory json = abi.encodePacked(
            '{"name":"meterroot counter #', tokenId.toString(),
            '","description":"What this consumer has paid through the meterroot settlement registry ',
            Strings.toHexString(registry),
            '.","attributes":[{"trait_type":"consumer","value":"', Strings.toChecksumHexString(consumer),
            '"},{"trait_type":"wei paid","value":"', uint256(c.weiPaid).toString(),
            '"},{"trait_type":"claims","display_type":"number","value":', uint256(c.claims).toString(),
            '},{"trait_type":"last batch","display_type":"number","value":', uint256(c.lastBatch).toString(),
            "}]}"
        );
        return string.concat("data:application/json;base64,", Base64.encode(json));
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, IERC165) returns (bool) {
        return interfaceId == type(IERC5192).interfaceId || interfaceId == bytes4(0x49064906)
            || super.supportsInterface(interfaceId);
    }

    // ------------------------------------------------------------------- non-transferable

    /// @dev Only mints pass: transfers and burns revert.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address) {
        if (_ownerOf(tokenId) != address(0)) revert TokenLocked(tokenId);
        return super._update(to, tokenId, auth);
    }

    function approve(address, uint256 tokenId) public pure override(ERC721, IERC721) {
        revert TokenLocked(tokenId);
    }

    function setApprovalForAll(address, bool) public pure override(ERC721, IERC721) {
        revert TokenLocked(0);
    }
}
