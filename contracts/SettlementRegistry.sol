// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {CounterNFT} from "./CounterNFT.sol";

/// @notice What slashForDowntime reads of a provider's AvailabilityFeed (SPEC §14).
interface IAvailabilityFeed {
    function provider() external view returns (address);
    function epochData(uint64 epoch) external view returns (uint80 roundId, int256 answer, uint256 updatedAt);
}

/// @title meterroot settlement registry (v2)
/// @notice Holds consumers' deposits and providers' stakes of one ERC-20 token, and the Merkle
/// roots of settlement batches. A payee claims what a consumer owes it with a proof of its leaf
/// `[chainId, registry, batch, consumer, payee, cumulativeAmount]` (an OpenZeppelin
/// StandardMerkleTree leaf) once the batch's challenge period is over, but never more than the
/// consumer consented to in an EIP-712 `SpendPermit`, nor more than the committed totals.
/// @dev No key moves a consumer's money beyond what the consumer signed:
/// - the committer publishes roots, but a root pays a payee only up to the consumer's permit;
/// - everything paid out stays within the sum of the committed totals of the batches claimed;
/// - governance can revoke a batch (and every later one) only while it is in its challenge period;
/// - the admin (two-step transfer with a delay, never simply renounced) only rotates roles.
/// Leaves carry the *cumulative* amount owed through their batch, as permits carry the cumulative
/// amount consented to, so a claim pays `min(leaf, permit) - collected`: claiming twice, or an
/// older batch after a newer one, pays nothing.
contract SettlementRegistry is AccessControlDefaultAdminRules, EIP712 {
    using SafeERC20 for IERC20;

    bytes32 public constant COMMITTER_ROLE = keccak256("COMMITTER_ROLE");
    bytes32 public constant GOVERNANCE_ROLE = keccak256("GOVERNANCE_ROLE");
    bytes32 public constant SPEND_PERMIT_TYPEHASH =
        keccak256("SpendPermit(address consumer,address payee,uint256 cumulativeAmount)");
    /// @notice Longest period any constructor parameter may set (a thaw near 2^64 would lock
    /// deposits for good).
    uint64 public constant MAX_PERIOD = 365 days;

    /// @notice What limited a claim below what its leaf owes.
    enum Limit {
        None,
        Permit, // the consumer's spend permit for this payee is lower than the leaf
        Deposit, // the consumer's deposit is smaller than what is owed
        CommittedTotals // paying more would exceed the committed totals of the batches claimed
    }

    /// @notice Constructor parameters (a struct: there are too many for the stack).
    struct Config {
        IERC20 token;
        address treasury;
        address admin;
        address committer;
        address governance;
        uint48 adminDelay;
        uint64 challengePeriod;
        uint64 maxBatchDelay;
        uint64 thawPeriod;
        uint64 withdrawalWindow;
        uint64 disputePeriod;
        uint64 unstakeThaw;
        uint128 minProviderStake;
        uint128 disputeBond;
        uint16 maxSlashBps;
        uint16 slaBps;
        uint16 downtimeSlashBps;
        uint64 feedStaleAfter;
    }

    /// @dev One storage word per batch. `cumulativeTotal` is the sum of the committed totals of
    /// batches 1..batch, the ceiling of everything claims through this batch may pay.
    struct Batch {
        bytes32 root;
        uint128 cumulativeTotal;
        uint64 committedAt;
        uint32 leafCount;
    }

    /// @dev Live batches are exactly 1..latestBatch: a commit appends, a revocation truncates.
    /// `initialised` keeps the word non-zero from the constructor on, so that the first commit
    /// writes it for 2,900 gas instead of 20,000.
    struct Head {
        uint64 latestBatch;
        uint128 committedTotal;
        bool initialised;
    }

    /// @dev `highestClaimedBatch` is final (claims need a finished challenge period), so the
    /// cumulative total through it can never be revoked: it bounds `paidOut` for good.
    struct Payouts {
        uint128 paidOut;
        uint64 highestClaimedBatch;
        bool initialised;
    }

    /// @dev What `payee` may collect from `consumer` in total (the highest permit) and has.
    struct Pair {
        uint128 permitted;
        uint128 collected;
    }

    struct Withdrawal {
        uint192 amount;
        uint64 unlockAt;
    }

    struct Stake {
        uint128 staked;
        uint128 unstaking;
    }

    enum DisputeState {
        None,
        Open,
        Upheld,
        Rejected,
        Expired
    }

    /// @dev `deadline` (the batch's challenge period plus the dispute period) is fixed when the
    /// dispute opens, so unstakeThaw > challengePeriod + disputePeriod keeps the stake in reach.
    struct Dispute {
        address consumer;
        uint64 batch;
        address provider;
        uint64 deadline;
        address challenger;
        DisputeState state;
        uint128 bond;
    }

    /// @notice The token consumers deposit, providers stake and payees are paid in.
    IERC20 public immutable token;
    /// @notice The protocol treasury: a payee that needs no stake.
    address public immutable treasury;
    /// @notice The consumers' Counter NFTs, deployed by this registry.
    CounterNFT public immutable counterNFT;
    /// @notice Seconds after its commit during which a batch can be revoked or disputed and not claimed.
    uint64 public immutable challengePeriod;
    /// @notice The longest the committer promises to take to commit usage.
    uint64 public immutable maxBatchDelay;
    /// @notice Seconds from a withdrawal request to its window; > challengePeriod + maxBatchDelay.
    uint64 public immutable thawPeriod;
    /// @notice Seconds after the thaw during which a withdrawal can be executed; then it lapses.
    uint64 public immutable withdrawalWindow;
    /// @notice Seconds after a batch's challenge period during which governance resolves its disputes.
    uint64 public immutable disputePeriod;
    /// @notice Seconds from an unstake request to the unstake; > challengePeriod + disputePeriod.
    uint64 public immutable unstakeThaw;
    /// @notice Stake (not being unstaked) a provider payee must hold to be paid.
    uint128 public immutable minProviderStake;
    /// @notice Tokens a challenger bonds to open a dispute.
    uint128 public immutable disputeBond;
    /// @notice Most of a provider's stake one upheld dispute may slash, in basis points.
    uint16 public immutable maxSlashBps;
    /// @notice Availability (basis points) a provider promises per epoch (SPEC §14).
    uint16 public immutable slaBps;
    /// @notice Share of its stake (basis points, <= maxSlashBps) a provider loses to the treasury
    /// for an epoch below slaBps.
    uint16 public immutable downtimeSlashBps;
    /// @notice A feed round older than this (seconds since its updatedAt) slashes no one.
    uint64 public immutable feedStaleAfter;
    /// @notice The AvailabilityFeed of each provider, set by governance.
    mapping(address provider => address) public availabilityFeed;
    /// @notice Whether (provider, epoch) was slashed for downtime already.
    mapping(address provider => mapping(uint64 epoch => bool)) public downtimeSlashed;

    Head private _head;
    Payouts private _payouts;
    mapping(uint64 batch => Batch) private _batches;
    mapping(address consumer => mapping(address payee => Pair)) private _pairs;
    /// @notice Tokens a consumer has deposited and not yet paid out or withdrawn.
    mapping(address consumer => uint256) public deposits;
    /// @notice A consumer's pending withdrawal request (amount 0: none).
    mapping(address consumer => Withdrawal) public withdrawals;
    /// @notice Until when `signer` may sign permits for `consumer` (0: never authorised;
    /// type(uint64).max: until revoked).
    mapping(address consumer => mapping(address signer => uint64)) public signerValidUntil;
    mapping(address provider => Stake) private _stakes;
    /// @notice When a provider's pending unstake can be executed.
    mapping(address provider => uint64) public unstakeUnlockAt;
    /// @notice Open disputes freezing claims of a (consumer, provider) leaf.
    mapping(address consumer => mapping(address provider => uint256)) public openDisputes;
    mapping(uint256 id => Dispute) private _disputes;
    /// @notice Disputes opened so far; ids run from 1.
    uint256 public disputeCount;

    event Deposited(address indexed consumer, address indexed from, uint256 amount, uint256 balance);
    event WithdrawalRequested(address indexed consumer, uint256 amount, uint64 unlockAt, uint64 lapsesAt);
    event WithdrawalCancelled(address indexed consumer, uint256 amount);
    event Withdrawn(address indexed consumer, uint256 amount, uint256 balance);
    event BatchCommitted(
        uint64 indexed batch, bytes32 root, uint256 total, uint32 leafCount, bytes32 manifestHash, string dataURI
    );
    /// @notice Batches `fromBatch`..`toBatch` are revoked; the next commit is `fromBatch` again.
    event BatchesRevoked(uint64 indexed fromBatch, uint64 toBatch, bytes32 reasonHash);
    event PermitSubmitted(
        address indexed consumer, address indexed payee, uint256 cumulativeAmount, address signer
    );
    event SignerAuthorized(address indexed consumer, address indexed signer);
    event SignerRevocationRequested(address indexed consumer, address indexed signer, uint64 validUntil);
    event Claimed(
        uint64 indexed batch, address indexed consumer, address indexed payee, uint256 amount, uint256 collected
    );
    /// @notice A claim paid less than its leaf owes; `unpaid` stays claimable once `cause` allows.
    event Shortfall(
        uint64 indexed batch, address indexed consumer, address indexed payee, uint256 unpaid, Limit cause
    );
    event Staked(address indexed provider, address indexed from, uint256 amount, uint256 staked);
    event UnstakeRequested(address indexed provider, uint256 amount, uint64 unlockAt);
    event Unstaked(address indexed provider, uint256 amount, uint256 staked);
    event DisputeOpened(
        uint256 indexed id,
        uint64 indexed batch,
        address indexed consumer,
        address provider,
        address challenger,
        uint256 bond,
        bytes32 evidenceHash
    );
    event DisputeResolved(
        uint256 indexed id, bool upheld, uint256 slashed, uint256 toChallenger, uint256 toConsumer
    );
    event DisputeExpired(uint256 indexed id);
    event AvailabilityFeedSet(address indexed provider, address indexed feed);
    event SlashedForDowntime(address indexed provider, uint64 indexed epoch, int256 availabilityBps, uint256 amount);

    error ZeroAddress();
    error ZeroAmount();
    error ZeroChallengePeriod();
    error ParameterOutOfRange(string parameter, uint256 value, uint256 limit);
    error ThawTooShort(uint64 thawPeriod, uint64 challengePeriod, uint64 maxBatchDelay);
    error UnstakeThawTooShort(uint64 unstakeThaw, uint64 challengePeriod, uint64 disputePeriod);
    error TransferAmountMismatch(uint256 expected, uint256 received);
    error BatchOutOfOrder(uint64 batch, uint64 expected);
    error EmptyRoot(uint64 batch);
    error TotalTooLarge(uint64 batch, uint256 total);
    error BatchNotLive(uint64 batch, uint64 latestBatch);
    error ChallengePeriodOver(uint64 batch, uint256 endedAt);
    error ChallengePeriodActive(uint64 batch, uint256 claimableAt);
    error InvalidProof(uint64 batch, address consumer, address payee, uint256 cumulativeAmount);
    error InvalidPermitSignature(address consumer, address payee, uint256 cumulativeAmount);
    error PermitNotHigher(address consumer, address payee, uint256 cumulativeAmount, uint256 permitted);
    /// @notice A claim that would pay nothing while its leaf still owes `owed`: reverted, so
    /// that no one can emit a Shortfall without paying something.
    error NothingPayable(uint64 batch, address consumer, address payee, uint256 owed, Limit cause);
    error LeafDisputed(address consumer, address payee, uint256 openDisputes);
    error ProviderStakeTooLow(address provider, uint256 bonded, uint256 required);
    error InsufficientDeposit(address consumer, uint256 balance, uint256 amount);
    error NoWithdrawalRequested(address consumer);
    error StillThawing(address account, uint64 unlockAt);
    error WithdrawalLapsed(address consumer, uint256 lapsedAt);
    error SignerNotAuthorized(address consumer, address signer);
    error InsufficientStake(address provider, uint256 staked, uint256 amount);
    error NoUnstakeRequested(address provider);
    error UnknownDispute(uint256 id);
    error DisputeNotOpen(uint256 id, DisputeState state);
    error DisputePeriodOver(uint256 id, uint256 endedAt);
    error DisputePeriodActive(uint256 id, uint256 endsAt);
    error SlashTooLarge(uint256 id, uint256 slash, uint256 maxSlash);
    error FeedProviderMismatch(address feed, address provider, address feedProvider);
    error NoAvailabilityFeed(address provider);
    error AvailabilityMeetsSla(address provider, uint64 epoch, int256 availabilityBps, uint16 slaBps);
    error StaleAvailabilityRound(address provider, uint64 epoch, uint256 updatedAt, uint256 staleSince);
    error AlreadySlashedForDowntime(address provider, uint64 epoch);

    constructor(Config memory config)
        AccessControlDefaultAdminRules(config.adminDelay, config.admin)
        EIP712("meterroot", "2")
    {
        _validate(config);
        token = config.token;
        treasury = config.treasury;
        challengePeriod = config.challengePeriod;
        maxBatchDelay = config.maxBatchDelay;
        thawPeriod = config.thawPeriod;
        withdrawalWindow = config.withdrawalWindow;
        disputePeriod = config.disputePeriod;
        unstakeThaw = config.unstakeThaw;
        minProviderStake = config.minProviderStake;
        disputeBond = config.disputeBond;
        maxSlashBps = config.maxSlashBps;
        slaBps = config.slaBps;
        downtimeSlashBps = config.downtimeSlashBps;
        feedStaleAfter = config.feedStaleAfter;
        _grantRole(COMMITTER_ROLE, config.committer);
        _grantRole(GOVERNANCE_ROLE, config.governance);
        _head.initialised = true;
        _payouts.initialised = true;
        counterNFT = new CounterNFT();
    }

    function _validate(Config memory c) private pure {
        if (address(c.token) == address(0) || c.treasury == address(0)) revert ZeroAddress();
        if (c.committer == address(0) || c.governance == address(0)) revert ZeroAddress();
        if (c.challengePeriod == 0) revert ZeroChallengePeriod();
        _bounded("challengePeriod", c.challengePeriod);
        _bounded("maxBatchDelay", c.maxBatchDelay);
        _bounded("thawPeriod", c.thawPeriod);
        _bounded("withdrawalWindow", c.withdrawalWindow);
        _bounded("disputePeriod", c.disputePeriod);
        _bounded("unstakeThaw", c.unstakeThaw);
        _bounded("adminDelay", c.adminDelay);
        if (c.withdrawalWindow == 0) revert ParameterOutOfRange("withdrawalWindow", 0, 1);
        if (c.disputePeriod == 0) revert ParameterOutOfRange("disputePeriod", 0, 1);
        if (uint256(c.thawPeriod) <= uint256(c.challengePeriod) + c.maxBatchDelay) {
            revert ThawTooShort(c.thawPeriod, c.challengePeriod, c.maxBatchDelay);
        }
        if (uint256(c.unstakeThaw) <= uint256(c.challengePeriod) + c.disputePeriod) {
            revert UnstakeThawTooShort(c.unstakeThaw, c.challengePeriod, c.disputePeriod);
        }
        if (c.disputeBond == 0) revert ParameterOutOfRange("disputeBond", 0, 1);
        if (c.maxSlashBps > 10_000) revert ParameterOutOfRange("maxSlashBps", c.maxSlashBps, 10_000);
        if (c.slaBps > 10_000) revert ParameterOutOfRange("slaBps", c.slaBps, 10_000);
        if (c.downtimeSlashBps > c.maxSlashBps) {
            revert ParameterOutOfRange("downtimeSlashBps", c.downtimeSlashBps, c.maxSlashBps);
        }
        if (c.feedStaleAfter == 0) revert ParameterOutOfRange("feedStaleAfter", 0, 1);
        _bounded("feedStaleAfter", c.feedStaleAfter);
    }

    function _bounded(string memory name, uint256 value) private pure {
        if (value > MAX_PERIOD) revert ParameterOutOfRange(name, value, MAX_PERIOD);
    }

    // ----------------------------------------------------------------------------- deposits

    /// @notice Deposit `amount` tokens (approved beforehand) for the caller.
    function deposit(uint256 amount) external {
        depositFor(msg.sender, amount);
    }

    /// @notice Deposit `amount` tokens of the caller (approved beforehand) for `consumer`; mints
    /// the consumer's Counter NFT on its first deposit.
    function depositFor(address consumer, uint256 amount) public {
        if (consumer == address(0)) revert ZeroAddress();
        _pull(amount);
        uint256 balance = deposits[consumer] + amount;
        deposits[consumer] = balance;
        emit Deposited(consumer, msg.sender, amount, balance);
        counterNFT.mintFor(consumer);
    }

    /// @notice Start the thaw of `amount` of the caller's deposit; replaces an earlier request and
    /// restarts its thaw. Claims keep paying from the deposit meanwhile.
    function requestWithdrawal(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 balance = deposits[msg.sender];
        if (amount > balance) revert InsufficientDeposit(msg.sender, balance, amount);
        uint64 unlockAt = uint64(block.timestamp) + thawPeriod;
        withdrawals[msg.sender] = Withdrawal(uint192(amount), unlockAt);
        emit WithdrawalRequested(msg.sender, amount, unlockAt, unlockAt + withdrawalWindow);
    }

    /// @notice Drop the caller's withdrawal request.
    function cancelWithdrawal() external {
        uint256 amount = withdrawals[msg.sender].amount;
        if (amount == 0) revert NoWithdrawalRequested(msg.sender);
        delete withdrawals[msg.sender];
        emit WithdrawalCancelled(msg.sender, amount);
    }

    /// @notice Pay out the caller's thawed request (or what claims left of the deposit), inside
    /// `[unlockAt, unlockAt + withdrawalWindow]`; after that the request has lapsed.
    function withdraw() external returns (uint256 amount) {
        Withdrawal memory request = withdrawals[msg.sender];
        if (request.amount == 0) revert NoWithdrawalRequested(msg.sender);
        if (block.timestamp < request.unlockAt) revert StillThawing(msg.sender, request.unlockAt);
        uint256 lapsesAt = uint256(request.unlockAt) + withdrawalWindow;
        if (block.timestamp > lapsesAt) revert WithdrawalLapsed(msg.sender, lapsesAt);
        uint256 balance = deposits[msg.sender];
        amount = request.amount < balance ? request.amount : balance;
        delete withdrawals[msg.sender];
        deposits[msg.sender] = balance - amount;
        emit Withdrawn(msg.sender, amount, balance - amount);
        if (amount > 0) token.safeTransfer(msg.sender, amount);
    }

    /// @notice The deposit less what a pending (not lapsed) withdrawal request will take.
    function available(address consumer) external view returns (uint256) {
        uint256 balance = deposits[consumer];
        Withdrawal memory request = withdrawals[consumer];
        if (request.amount == 0 || block.timestamp > uint256(request.unlockAt) + withdrawalWindow) return balance;
        return request.amount < balance ? balance - request.amount : 0;
    }

    /// @dev Take `amount` tokens from the caller; refuse a token that delivers less than asked
    /// (fee on transfer), which would make the registry owe more than it holds.
    function _pull(uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert TransferAmountMismatch(amount, received);
    }

    // ------------------------------------------------------------------------------ permits

    /// @notice Store a consumer's EIP-712 SpendPermit: `payee` may collect up to `cumulativeAmount`
    /// from `consumer` in total. Signed by the consumer (EOA or ERC-1271 wallet) or by a signer
    /// it authorised. A permit not higher than the stored one is refused (it would change nothing).
    function submitPermit(address consumer, address payee, uint256 cumulativeAmount, bytes calldata signature)
        external
    {
        if (!_acceptPermit(consumer, payee, cumulativeAmount, signature)) {
            revert PermitNotHigher(consumer, payee, cumulativeAmount, _pairs[consumer][payee].permitted);
        }
    }

    /// @notice The highest permit stored for (consumer, payee).
    function permitted(address consumer, address payee) external view returns (uint256) {
        return _pairs[consumer][payee].permitted;
    }

    /// @notice What `payee` has been paid from `consumer`'s deposit, over all batches.
    function collected(address consumer, address payee) external view returns (uint256) {
        return _pairs[consumer][payee].collected;
    }

    /// @notice The EIP-712 digest a SpendPermit signature signs.
    function permitDigest(address consumer, address payee, uint256 cumulativeAmount) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(SPEND_PERMIT_TYPEHASH, consumer, payee, cumulativeAmount)));
    }

    /// @notice Let `signer` (an EOA) sign permits for the caller, until revoked.
    function authorizeSigner(address signer) external {
        if (signer == address(0)) revert ZeroAddress();
        signerValidUntil[msg.sender][signer] = type(uint64).max;
        emit SignerAuthorized(msg.sender, signer);
    }

    /// @notice Revoke `signer` after the thaw: permits it signed can be submitted until then.
    function revokeSigner(address signer) external {
        uint64 until = signerValidUntil[msg.sender][signer];
        if (until != type(uint64).max) revert SignerNotAuthorized(msg.sender, signer);
        uint64 validUntil = uint64(block.timestamp) + thawPeriod;
        signerValidUntil[msg.sender][signer] = validUntil;
        emit SignerRevocationRequested(msg.sender, signer, validUntil);
    }

    /// @notice Whether `signer` may sign permits for `consumer` now.
    function isAuthorizedSigner(address consumer, address signer) public view returns (bool) {
        return block.timestamp < signerValidUntil[consumer][signer];
    }

    /// @return raised false when the permit is not higher than the stored one (nothing changes).
    function _acceptPermit(address consumer, address payee, uint256 cumulativeAmount, bytes calldata signature)
        private
        returns (bool raised)
    {
        Pair storage pair = _pairs[consumer][payee];
        // Nothing is ever owed beyond 2^128 - 1 (committed totals), so larger permits are capped.
        uint128 value = cumulativeAmount > type(uint128).max ? type(uint128).max : uint128(cumulativeAmount);
        if (value <= pair.permitted) return false;
        bytes32 digest = permitDigest(consumer, payee, cumulativeAmount);
        address signer = consumer;
        if (!SignatureChecker.isValidSignatureNow(consumer, digest, signature)) {
            (address recovered, ECDSA.RecoverError error,) = ECDSA.tryRecover(digest, signature);
            if (error != ECDSA.RecoverError.NoError || !isAuthorizedSigner(consumer, recovered)) {
                revert InvalidPermitSignature(consumer, payee, cumulativeAmount);
            }
            signer = recovered;
        }
        pair.permitted = value;
        emit PermitSubmitted(consumer, payee, cumulativeAmount, signer);
        return true;
    }

    // ------------------------------------------------------------------------------ batches

    /// @notice Commit the root of the next batch (`latestBatch() + 1`). `dataURI` says where its
    /// tree dump and manifest are published; it is emitted, not stored. A batch that settled only
    /// free usage has no tree: it is committed with the zero root, a zero total and no leaves
    /// (no proof verifies against it), so the batches after it keep their numbers.
    function commitBatch(
        uint64 batch,
        bytes32 root,
        uint256 total,
        uint32 leafCount,
        bytes32 manifestHash,
        string calldata dataURI
    ) external onlyRole(COMMITTER_ROLE) {
        Head memory head = _head;
        if (batch != head.latestBatch + 1) revert BatchOutOfOrder(batch, head.latestBatch + 1);
        if (root == bytes32(0) && (total != 0 || leafCount != 0)) revert EmptyRoot(batch);
        if (total > type(uint128).max - head.committedTotal) revert TotalTooLarge(batch, total);
        uint128 cumulative = head.committedTotal + uint128(total);
        _batches[batch] = Batch(root, cumulative, uint64(block.timestamp), leafCount);
        _head = Head(batch, cumulative, true);
        emit BatchCommitted(batch, root, total, leafCount, manifestHash, dataURI);
    }

    /// @notice Revoke `batch` and every later batch (they build on its cumulative amounts) while
    /// `batch` is in its challenge period; the next commit is `batch` again.
    function revokeBatch(uint64 batch, bytes32 reasonHash) external onlyRole(GOVERNANCE_ROLE) {
        Head memory head = _head;
        if (batch == 0 || batch > head.latestBatch) revert BatchNotLive(batch, head.latestBatch);
        uint256 endsAt = uint256(_batches[batch].committedAt) + challengePeriod;
        if (block.timestamp >= endsAt) revert ChallengePeriodOver(batch, endsAt);
        uint128 before = batch == 1 ? 0 : _batches[batch - 1].cumulativeTotal;
        _head = Head(batch - 1, before, true);
        emit BatchesRevoked(batch, head.latestBatch, reasonHash);
    }

    /// @notice The last committed, not revoked batch (0 before the first commit).
    function latestBatch() external view returns (uint64) {
        return _head.latestBatch;
    }

    /// @notice Sum of the committed totals of the live batches; and of what claims paid out.
    function totals() external view returns (uint256 committed, uint256 paidOut) {
        return (_head.committedTotal, _payouts.paidOut);
    }

    /// @notice What is stored about `batch`; `committedAt == 0` when it was never committed.
    /// `total` is the committed total of a live batch (0 for a revoked one: see its BatchCommitted
    /// event); `cumulativeTotal` the sum of the totals through it.
    function batchInfo(uint64 batch)
        external
        view
        returns (
            bytes32 root,
            uint256 total,
            uint256 cumulativeTotal,
            uint32 leafCount,
            uint64 committedAt,
            bool revoked
        )
    {
        Batch memory b = _batches[batch];
        revoked = b.committedAt != 0 && batch > _head.latestBatch;
        if (b.committedAt != 0 && !revoked) {
            total = b.cumulativeTotal - (batch == 1 ? 0 : _batches[batch - 1].cumulativeTotal);
        }
        return (b.root, total, b.cumulativeTotal, b.leafCount, b.committedAt, revoked);
    }

    /// @notice When `batch` can be claimed from (its commit time plus the challenge period).
    function claimableAt(uint64 batch) external view returns (uint256) {
        if (batch == 0 || batch > _head.latestBatch) revert BatchNotLive(batch, _head.latestBatch);
        return uint256(_batches[batch].committedAt) + challengePeriod;
    }

    // ------------------------------------------------------------------------------- claims

    /// @notice Pay `payee` what `consumer` owes it through `batch`, as far as the consumer's
    /// permit, its deposit and the committed totals allow. Anyone may call.
    /// @return paid tokens transferred to `payee` (0: everything owed was collected already).
    function claim(
        uint64 batch,
        address consumer,
        address payee,
        uint256 cumulativeAmount,
        bytes32[] calldata proof
    ) external returns (uint256 paid) {
        return _claim(batch, consumer, payee, cumulativeAmount, proof);
    }

    /// @notice Submit a permit (when higher than the stored one) and claim, in one transaction.
    function claimWithPermit(
        uint64 batch,
        address consumer,
        address payee,
        uint256 cumulativeAmount,
        bytes32[] calldata proof,
        uint256 permitAmount,
        bytes calldata signature
    ) external returns (uint256 paid) {
        _acceptPermit(consumer, payee, permitAmount, signature);
        return _claim(batch, consumer, payee, cumulativeAmount, proof);
    }

    function _claim(uint64 batch, address consumer, address payee, uint256 cumulativeAmount, bytes32[] calldata proof)
        private
        returns (uint256 paid)
    {
        Batch memory committed = _liveFinalBatch(batch);
        bytes32 leaf = keccak256(
            bytes.concat(keccak256(abi.encode(block.chainid, address(this), batch, consumer, payee, cumulativeAmount)))
        );
        if (!MerkleProof.verifyCalldata(proof, committed.root, leaf)) {
            revert InvalidProof(batch, consumer, payee, cumulativeAmount);
        }
        Pair memory pair = _pairs[consumer][payee];
        if (cumulativeAmount <= pair.collected) return 0; // a repeated claim: nothing owed
        _requireClaimable(consumer, payee);

        uint256 owed = cumulativeAmount - pair.collected;
        Limit cause;
        (paid, cause) = _payable(batch, consumer, owed, pair, committed.cumulativeTotal);
        if (paid == 0) revert NothingPayable(batch, consumer, payee, owed, cause);

        _pairs[consumer][payee].collected = pair.collected + uint128(paid);
        deposits[consumer] -= paid;
        emit Claimed(batch, consumer, payee, paid, pair.collected + paid);
        if (paid < owed) emit Shortfall(batch, consumer, payee, owed - paid, cause);
        counterNFT.recordClaim(consumer, paid, batch);
        token.safeTransfer(payee, paid);
    }

    function _liveFinalBatch(uint64 batch) private view returns (Batch memory committed) {
        uint64 latest = _head.latestBatch;
        if (batch == 0 || batch > latest) revert BatchNotLive(batch, latest);
        committed = _batches[batch];
        uint256 claimable = uint256(committed.committedAt) + challengePeriod;
        if (block.timestamp < claimable) revert ChallengePeriodActive(batch, claimable);
    }

    function _requireClaimable(address consumer, address payee) private view {
        uint256 frozenBy = openDisputes[consumer][payee];
        if (frozenBy != 0) revert LeafDisputed(consumer, payee, frozenBy);
        if (payee != treasury) {
            Stake memory s = _stakes[payee];
            uint256 bonded = s.staked - s.unstaking;
            if (bonded < minProviderStake) revert ProviderStakeTooLow(payee, bonded, minProviderStake);
        }
    }

    /// @dev The smallest of what is owed, what the permit leaves, the deposit and what the
    /// committed totals leave; records the payout against the totals. Ties name the earlier limit.
    function _payable(uint64 batch, address consumer, uint256 owed, Pair memory pair, uint128 cumulativeTotal)
        private
        returns (uint256 paid, Limit cause)
    {
        paid = owed;
        uint256 permitLeft = pair.permitted > pair.collected ? pair.permitted - pair.collected : 0;
        if (permitLeft < paid) (paid, cause) = (permitLeft, Limit.Permit);
        uint256 balance = deposits[consumer];
        if (balance < paid) (paid, cause) = (balance, Limit.Deposit);

        Payouts memory payouts = _payouts;
        uint64 bound = batch;
        if (payouts.highestClaimedBatch > batch) {
            bound = payouts.highestClaimedBatch;
            cumulativeTotal = _batches[bound].cumulativeTotal;
        }
        uint256 totalsLeft = cumulativeTotal > payouts.paidOut ? cumulativeTotal - payouts.paidOut : 0;
        if (totalsLeft < paid) (paid, cause) = (totalsLeft, Limit.CommittedTotals);
        if (paid > 0) _payouts = Payouts(payouts.paidOut + uint128(paid), bound, true);
    }

    // ---------------------------------------------------------------------------- providers

    /// @notice Add `amount` tokens of the caller to its own stake.
    function stake(uint256 amount) external {
        stakeFor(msg.sender, amount);
    }

    /// @notice Add `amount` tokens of the caller to `provider`'s stake.
    function stakeFor(address provider, uint256 amount) public {
        if (provider == address(0)) revert ZeroAddress();
        _pull(amount);
        Stake storage s = _stakes[provider];
        uint256 staked = uint256(s.staked) + amount;
        if (staked > type(uint128).max) revert ParameterOutOfRange("stake", staked, type(uint128).max);
        s.staked = uint128(staked);
        emit Staked(provider, msg.sender, amount, staked);
    }

    /// @notice Start the thaw of `amount` of the caller's stake (replacing an earlier request);
    /// the amount stops counting towards minProviderStake now, and stays slashable until unstaked.
    function requestUnstake(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Stake storage s = _stakes[msg.sender];
        if (amount > s.staked) revert InsufficientStake(msg.sender, s.staked, amount);
        s.unstaking = uint128(amount);
        uint64 unlockAt = uint64(block.timestamp) + unstakeThaw;
        unstakeUnlockAt[msg.sender] = unlockAt;
        emit UnstakeRequested(msg.sender, amount, unlockAt);
    }

    /// @notice Pay out the caller's thawed unstake request (less what slashing took meanwhile).
    function unstake() external returns (uint256 amount) {
        Stake memory s = _stakes[msg.sender];
        if (s.unstaking == 0) revert NoUnstakeRequested(msg.sender);
        uint64 unlockAt = unstakeUnlockAt[msg.sender];
        if (block.timestamp < unlockAt) revert StillThawing(msg.sender, unlockAt);
        amount = s.unstaking;
        _stakes[msg.sender] = Stake(s.staked - uint128(amount), 0);
        delete unstakeUnlockAt[msg.sender];
        emit Unstaked(msg.sender, amount, s.staked - amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice A provider's stake, the part of it being unstaked, and when that unlocks.
    function stakes(address provider) external view returns (uint256 staked, uint256 unstaking, uint64 unlockAt) {
        Stake memory s = _stakes[provider];
        return (s.staked, s.unstaking, unstakeUnlockAt[provider]);
    }

    // ----------------------------------------------------------------------------- disputes

    /// @notice Dispute the (consumer, provider) leaf of `batch` while the batch is in its
    /// challenge period, bonding `disputeBond` tokens; claims of that pair freeze until the
    /// dispute is resolved (or expires unresolved after the dispute period).
    function openDispute(uint64 batch, address consumer, address provider, bytes32 evidenceHash)
        external
        returns (uint256 id)
    {
        uint64 latest = _head.latestBatch;
        if (batch == 0 || batch > latest) revert BatchNotLive(batch, latest);
        uint256 endsAt = uint256(_batches[batch].committedAt) + challengePeriod;
        if (block.timestamp >= endsAt) revert ChallengePeriodOver(batch, endsAt);
        if (consumer == address(0) || provider == address(0)) revert ZeroAddress();
        _pull(disputeBond);
        id = ++disputeCount;
        uint64 deadline = uint64(endsAt) + disputePeriod;
        _disputes[id] = Dispute(consumer, batch, provider, deadline, msg.sender, DisputeState.Open, disputeBond);
        openDisputes[consumer][provider] += 1;
        emit DisputeOpened(id, batch, consumer, provider, msg.sender, disputeBond, evidenceHash);
    }

    /// @notice Governance's verdict on dispute `id` within the dispute period. Upheld: slash up
    /// to maxSlashBps of the provider's stake, half (rounded down) to the challenger with its
    /// bond, the rest to the consumer's deposit. Rejected: the bond goes to the provider.
    function resolveDispute(uint256 id, bool upheld, uint256 slash) external onlyRole(GOVERNANCE_ROLE) {
        Dispute storage d = _openDispute(id);
        if (block.timestamp >= d.deadline) revert DisputePeriodOver(id, d.deadline);
        _unfreeze(d, upheld ? DisputeState.Upheld : DisputeState.Rejected);
        if (!upheld) {
            if (slash != 0) revert SlashTooLarge(id, slash, 0);
            emit DisputeResolved(id, false, 0, 0, 0);
            token.safeTransfer(d.provider, d.bond);
            return;
        }
        Stake memory s = _stakes[d.provider];
        uint256 maxSlash = uint256(s.staked) * maxSlashBps / 10_000; // rounded down: never above the cap
        if (slash > maxSlash) revert SlashTooLarge(id, slash, maxSlash);
        uint128 left = s.staked - uint128(slash);
        _stakes[d.provider] = Stake(left, s.unstaking < left ? s.unstaking : left);
        uint256 toChallenger = slash / 2; // rounded down; the odd wei goes to the consumer
        uint256 toConsumer = slash - toChallenger;
        if (toConsumer > 0) {
            uint256 balance = deposits[d.consumer] + toConsumer;
            deposits[d.consumer] = balance;
            emit Deposited(d.consumer, address(this), toConsumer, balance);
            counterNFT.mintFor(d.consumer);
        }
        emit DisputeResolved(id, true, slash, toChallenger, toConsumer);
        token.safeTransfer(d.challenger, toChallenger + d.bond);
    }

    /// @notice Anyone may close a dispute that governance left unresolved past the dispute
    /// period: the bond returns to the challenger and the leaf's claims unfreeze.
    function expireDispute(uint256 id) external {
        Dispute storage d = _openDispute(id);
        if (block.timestamp < d.deadline) revert DisputePeriodActive(id, d.deadline);
        _unfreeze(d, DisputeState.Expired);
        emit DisputeExpired(id);
        token.safeTransfer(d.challenger, d.bond);
    }

    // --------------------------------------------------------------------- availability SLA

    /// @notice Governance names the AvailabilityFeed that reports `provider`'s availability.
    function setAvailabilityFeed(address provider, address feed) external onlyRole(GOVERNANCE_ROLE) {
        if (provider == address(0) || feed == address(0)) revert ZeroAddress();
        address reported = IAvailabilityFeed(feed).provider();
        if (reported != provider) revert FeedProviderMismatch(feed, provider, reported);
        availabilityFeed[provider] = feed;
        emit AvailabilityFeedSet(provider, feed);
    }

    /// @notice Anyone, once per (provider, epoch): when the provider's feed reports that epoch
    /// below slaBps in a round that is not stale, slash downtimeSlashBps of its stake to the treasury.
    function slashForDowntime(address provider, uint64 epoch) external returns (uint256 amount) {
        if (downtimeSlashed[provider][epoch]) revert AlreadySlashedForDowntime(provider, epoch);
        address feed = availabilityFeed[provider];
        if (feed == address(0)) revert NoAvailabilityFeed(provider);
        (, int256 answer, uint256 updatedAt) = IAvailabilityFeed(feed).epochData(epoch);
        if (block.timestamp > updatedAt + feedStaleAfter) {
            revert StaleAvailabilityRound(provider, epoch, updatedAt, updatedAt + feedStaleAfter);
        }
        if (answer >= int256(uint256(slaBps))) revert AvailabilityMeetsSla(provider, epoch, answer, slaBps);
        downtimeSlashed[provider][epoch] = true;
        Stake memory s = _stakes[provider];
        amount = uint256(s.staked) * downtimeSlashBps / 10_000; // rounded down: never above the rate
        uint128 left = s.staked - uint128(amount);
        _stakes[provider] = Stake(left, s.unstaking < left ? s.unstaking : left);
        emit SlashedForDowntime(provider, epoch, answer, amount);
        if (amount > 0) token.safeTransfer(treasury, amount);
    }

    /// @notice Everything stored about dispute `id`, and until when governance can resolve it.
    function disputes(uint256 id)
        external
        view
        returns (
            uint64 batch,
            address consumer,
            address provider,
            address challenger,
            uint256 bond,
            DisputeState state,
            uint256 resolvableUntil
        )
    {
        Dispute memory d = _disputes[id];
        if (d.state == DisputeState.None) revert UnknownDispute(id);
        return (d.batch, d.consumer, d.provider, d.challenger, d.bond, d.state, d.deadline);
    }

    function _openDispute(uint256 id) private view returns (Dispute storage d) {
        d = _disputes[id];
        if (d.state == DisputeState.None) revert UnknownDispute(id);
        if (d.state != DisputeState.Open) revert DisputeNotOpen(id, d.state);
    }

    function _unfreeze(Dispute storage d, DisputeState outcome) private {
        d.state = outcome;
        openDisputes[d.consumer][d.provider] -= 1;
    }
}
