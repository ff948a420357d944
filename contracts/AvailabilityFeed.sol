// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title AvailabilityFeed
/// @notice One provider's availability per epoch (SPEC §14), as a Chainlink data feed: `answer`
/// is availability in basis points (decimals 4: 10000 = 100%), one round per epoch, written only
/// by the oracle role (a Chainlink node's job in production). `startedAt` is the start of the
/// epoch the round reports and `updatedAt` when it was written, so a reader sees how stale a round
/// is, as with Chainlink's L2 sequencer uptime feed.
contract AvailabilityFeed is AggregatorV3Interface, AccessControl {
    bytes32 public constant ORACLE_ROLE = keccak256("ORACLE_ROLE");
    uint256 public constant MAX_ANSWER = 10_000;

    struct Round {
        uint64 epoch;
        uint16 answer;
        uint64 updatedAt;
    }

    /// @notice The provider whose availability this feed reports.
    address public immutable provider;
    /// @notice Length of an epoch in seconds (the settlement tariff's `epoch_seconds`).
    uint64 public immutable epochSeconds;
    string private _description;

    uint80 public latestRound;
    mapping(uint80 roundId => Round) private _rounds;
    mapping(uint64 epoch => uint80 roundId) public roundOfEpoch;

    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
    event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);
    event EpochReported(uint64 indexed epoch, uint80 indexed roundId, uint16 availabilityBps);

    error ZeroAddress();
    error ZeroEpochSeconds();
    error AnswerOutOfRange(uint256 availabilityBps);
    error EpochNotAfterLatest(uint64 epoch, uint64 latestEpoch);
    error EpochNotOver(uint64 epoch, uint256 endsAt);
    error NoDataPresent(uint80 roundId);

    constructor(address admin, address oracle, address provider_, uint64 epochSeconds_, string memory description_) {
        if (admin == address(0) || oracle == address(0) || provider_ == address(0)) revert ZeroAddress();
        if (epochSeconds_ == 0) revert ZeroEpochSeconds();
        provider = provider_;
        epochSeconds = epochSeconds_;
        _description = description_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ORACLE_ROLE, oracle);
    }

    /// @notice Report `availabilityBps` for `epoch`: the next round. Epochs go strictly up (one
    /// round each) and only once they are over.
    function submit(uint64 epoch, uint256 availabilityBps) external onlyRole(ORACLE_ROLE) returns (uint80 roundId) {
        if (availabilityBps > MAX_ANSWER) revert AnswerOutOfRange(availabilityBps);
        uint80 latest = latestRound;
        if (latest != 0 && epoch <= _rounds[latest].epoch) revert EpochNotAfterLatest(epoch, _rounds[latest].epoch);
        uint256 endsAt = (uint256(epoch) + 1) * epochSeconds;
        if (block.timestamp < endsAt) revert EpochNotOver(epoch, endsAt);
        roundId = latest + 1;
        latestRound = roundId;
        _rounds[roundId] = Round(epoch, uint16(availabilityBps), uint64(block.timestamp));
        roundOfEpoch[epoch] = roundId;
        emit NewRound(roundId, msg.sender, uint256(epoch) * epochSeconds);
        emit AnswerUpdated(int256(availabilityBps), roundId, block.timestamp);
        emit EpochReported(epoch, roundId, uint16(availabilityBps));
    }

    function decimals() external pure returns (uint8) {
        return 4;
    }

    function description() external view returns (string memory) {
        return _description;
    }

    function version() external pure returns (uint256) {
        return 1;
    }

    function getRoundData(uint80 roundId)
        public
        view
        returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Round memory round = _rounds[roundId];
        if (round.updatedAt == 0) revert NoDataPresent(roundId);
        return (roundId, int256(uint256(round.answer)), uint256(round.epoch) * epochSeconds, round.updatedAt, roundId);
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return getRoundData(latestRound);
    }

    /// @notice The round that reports `epoch`, with its answer and when it was written.
    function epochData(uint64 epoch) external view returns (uint80 roundId, int256 answer, uint256 updatedAt) {
        roundId = roundOfEpoch[epoch];
        if (roundId == 0) revert NoDataPresent(0);
        (, answer,, updatedAt,) = getRoundData(roundId);
    }
}
