// SPDX-License-Identifier: MIT OR Apache-2.0
// parallax::link: the cross-process transport. An IpcPublisher listens on a Unix socket and
// hands its pool's buffers to any number of IpcSubscribers with no payload copy (memfd +
// SOCK_SEQPACKET + SCM_RIGHTS, a shared-memory descriptor ring per subscriber). See
// docs/protocol.md for the wire format, the state machine and the security model.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "parallax/buffer.h"
#include "parallax/event.h"
#include "parallax/pool.h"
#include "parallax/result.h"

namespace parallax::link {

/// What the publisher does for one subscriber that cannot take a buffer right now (its lease
/// quota is used up or its descriptor ring is full).
enum class Policy : std::uint8_t {
  block = 0,        ///< backpressure: send() waits for this subscriber (stalls all of them)
  drop_oldest = 1,  ///< retract the oldest buffers not yet read by the subscriber, keep the new one
  drop_newest = 2,  ///< skip the new buffer for this subscriber
};
/// "block", "drop-oldest", "drop-newest".
[[nodiscard]] std::string_view to_string(Policy p) noexcept;
/// Parses the names above (also accepts '_' for '-'); invalid_argument otherwise.
[[nodiscard]] Result<Policy> policy_from_string(std::string_view s);

// Events are the one model of parallax/event.h (link::Event is parallax::Event); the wire
// encodes them as in docs/protocol.md. A caps event carries its Caps' text() unchanged; the
// subscriber rebuilds the Caps with Caps::from_text, which never fails.

/// Largest encoded event (caps string, custom payload...) the transport carries. Larger events
/// are refused with invalid_argument. Also bounded by a quarter of the ring size.
inline constexpr std::size_t kMaxEventBytes = 60 * 1024;

/// One element of the ordered stream a subscriber receives.
using Item = std::variant<memory::Buffer, Event>;

/// Shared memory of the pool a publisher makes (PublisherOptions::memory).
enum class PoolMemory : std::uint8_t {
  memfd = 0,     ///< memfd shared memory
  hugepage = 1,  ///< memfd with huge pages (falls back to transparent huge pages)
};

struct PublisherOptions {
  /// Socket file mode (chmod after bind). Credentials are checked regardless (SO_PEERCRED).
  std::uint32_t socket_mode{0600};
  /// Peers admitted besides the publisher's own effective uid. A peer is admitted when its uid
  /// is the publisher's euid, or in allowed_uids, or its gid is in allowed_gids.
  std::vector<uid_t> allowed_uids;
  std::vector<gid_t> allowed_gids;
  /// The pool whose slots loan() hands out and send() shares. Its segments must be shareable
  /// (memfd / hugepage). When null, the publisher makes one from the fields below (and fit()
  /// makes larger ones the same way): the transport policy both sink elements share.
  std::shared_ptr<memory::MemoryPool> pool;
  /// Bytes per slot (rounded up to 64). 0: a variable-size pool (MemoryPool::create_arena) whose
  /// first segment holds slot_count blocks of arena_block bytes (at least 2 MiB, at most
  /// max_pool_bytes) and that grows within max_pool_bytes.
  std::size_t slot_size{1 << 20};
  /// Slots in the first segment. 0 = automatic: as many as fit in 16 MiB, at least 6, at most
  /// 256 (fewer when max_pool_bytes cannot hold them, never below 2).
  std::size_t slot_count{32};
  /// slot_size 0: the expected block size (the first buffer's), sizing the arena's first segment.
  std::size_t arena_block{0};
  /// Shared memory of the pool the publisher makes.
  PoolMemory memory{PoolMemory::memfd};
  /// Commit every page of each segment the publisher makes when it is made (slot pools only: a
  /// variable-size pool commits pages as its blocks touch them; with numa_node the placement
  /// prefaults instead): no page fault in the streaming path, and memory
  /// that cannot be backed is an error at bind() or growth rather than a SIGBUS later.
  bool prefault{false};
  /// Most bytes of shared memory the pool the publisher makes may take (0: its first segment,
  /// no growth). A slot pool whose first segment would not fit is an error naming this budget;
  /// within it, a slot pool grows by whole segments as subscribers join (see pool_reserve), a
  /// variable-size pool as its blocks need. Given pools (`pool` set) grow at admission only if
  /// they were made with room to (PoolOptions::max_segments), within this budget too.
  std::uint64_t max_pool_bytes{0};
  /// Name of the memfds the publisher makes (shown in /proc/PID/fd and maps).
  std::string pool_name{"parallax-ipc-pool"};
  /// Most buffers one subscriber may hold at once (sent and not yet returned). 1..4096.
  /// What a subscriber is granted is bounded by the pool (slot pools): see pool_reserve.
  /// 0: three quarters of the first segment's slots (the sinks' rule; 48 for an arena).
  std::uint32_t max_leases_per_subscriber{32};
  /// Slots of a slot pool kept for the producer: the quotas granted to subscribers (plus the
  /// quotas of gone subscribers whose slots are quarantined) never sum to more than the pool's
  /// slots minus this reserve, so subscribers that hold every buffer they get cannot make
  /// loan() time out. Each joining subscriber is granted min(max_leases_per_subscriber, 3/4
  /// of the slots not yet granted, at least 1). A newcomer that would get less than half of
  /// max_leases_per_subscriber first makes the pool grow by whole segments while
  /// max_pool_bytes allows (fan-out); when no slot is left even then, it is refused with
  /// resource_exhausted. 0 = auto: max(1, slots / 8). Must be below the pool's slots.
  /// Variable-size (arena) pools are not bounded this way (quota only).
  std::uint32_t pool_reserve{0};
  /// Bytes of each subscriber's descriptor ring (power of two, 16 KiB .. 16 MiB).
  std::uint32_t ring_bytes{256 * 1024};
  /// Used when a subscriber does not ask for a policy of its own.
  Policy default_policy{Policy::block};
  /// Policies a subscriber may ask for in its hello (empty = any). A subscriber asking for
  /// another one is refused with permission_denied ("policy ... not allowed"). Leave `block`
  /// out so that no subscriber can make send() wait for it (a hoarding or stalled `block`
  /// subscriber stalls every send up to block_timeout). default_policy must be allowed.
  std::vector<Policy> allowed_policies;
  std::size_t max_subscribers{64};
  /// A connection that has not sent its hello within this time is closed (it would otherwise
  /// hold one of max_subscribers forever). Counted in protocol_errors. Must be positive.
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(2)};
  /// How long loan() waits for a free slot before failing with timeout.
  std::chrono::milliseconds loan_timeout{std::chrono::seconds(5)};
  /// A `block` subscriber that makes send() wait longer than this is disconnected (0 = wait
  /// forever, like GStreamer backpressure).
  std::chrono::milliseconds block_timeout{0};
  /// How long send() spins (watching the subscriber's progress in shared memory) before it
  /// sleeps on a subscriber that is behind (`block` policy). A sleep costs two syscalls and a
  /// wake-up; a short spin covers the usual case of a consumer that is only a few buffers
  /// behind. 0 = sleep at once.
  std::chrono::nanoseconds spin{std::chrono::microseconds(20)};
  /// After sending a buffer of at least this many bytes, send() takes back at once the leases
  /// subscribers have returned since the last look (otherwise it looks only when half a quota,
  /// ring or pool is used): the slots go back to the pool's LIFO free list, so the next loan
  /// reuses the slot returned last, still in the cache, instead of cycling through the whole
  /// pool (a 1080p frame is 8 MiB). Costs a read of each subscriber's counters per send:
  /// nothing next to a large frame, too much per small buffer. 0 = never.
  std::size_t eager_return_bytes{std::size_t{1} << 20};
  /// Places the pool's memory on a NUMA node (hwloc logical index): each segment is bound there
  /// (hwloc_set_area_membind, bind policy), prefaulted, and the pages' location is verified and
  /// reported in stats(); subscribers are told the node in the segment announcement (their
  /// `affinity=auto` follows it). kAutoNode: the node of the CPUs of the thread calling bind().
  /// std::nullopt: the kernel places pages at first touch (the node announced is then where
  /// the pages are when a subscriber joins, if all on one node).
  std::optional<int> numa_node;
  static constexpr int kAutoNode = -1;
  /// A node that cannot be applied is a warning (logged, stats say where the pages are)
  /// instead of making bind() fail.
  bool numa_best_effort{false};
  /// Drain at EOS: close() of a publisher whose stream ended (send_eos() and no flush since)
  /// first waits, up to this long, until every connected subscriber has read everything sent
  /// to it, the EOS included (drain()). Cut short by interrupt(). 0 = close at once.
  std::chrono::milliseconds linger{std::chrono::seconds(2)};
};

/// Counters of one connected subscriber, as seen by the publisher.
struct SubscriberInfo {
  std::uint64_t id{0};  ///< connection number, unique within the publisher
  pid_t pid{0};
  uid_t uid{0};
  gid_t gid{0};
  Policy policy{Policy::block};
  std::uint64_t buffers_sent{0};
  std::uint64_t events_sent{0};
  std::uint64_t dropped_oldest{0};  ///< retracted before the subscriber read them
  std::uint64_t dropped_newest{0};  ///< never written for this subscriber
  std::uint64_t blocked_sends{0};   ///< sends that had to wait for this subscriber
  std::uint32_t leases{0};          ///< buffers it holds right now
  std::uint32_t max_leases{0};      ///< its quota
  std::uint64_t bytes_sent{0};      ///< payload bytes of buffers_sent
  std::uint64_t ring_used{0};       ///< descriptor ring bytes written and not yet taken
  std::uint32_t ring_capacity{0};   ///< descriptor ring bytes
  std::uint64_t connected_ns{0};    ///< how long it has been connected
  // Reported by the subscriber itself through its ack area (display only: not validated).
  std::uint64_t received{0};        ///< buffers it took off its ring
  std::uint64_t latency_count{0};   ///< buffers with a transit latency measured
  std::uint64_t latency_p50_ns{0};  ///< transit latency quantiles (log2 bucket upper bounds)
  std::uint64_t latency_p99_ns{0};
  std::uint64_t latency_max_ns{0};
};

/// One segment of the publisher's pool.
struct PoolSegmentInfo {
  std::uint64_t id{0};
  std::uint64_t size{0};   ///< bytes mapped
  std::uint32_t slots{0};  ///< slots carved from it
};

struct PublisherStats {
  std::uint64_t buffers_sent{0};  ///< send() calls that reached at least the publisher
  std::uint64_t zero_copy{0};     ///< buffers that were already slots of our pool
  std::uint64_t copies{0};        ///< buffers copied once into a slot (heap / foreign pool)
  std::uint64_t bytes_copied{0};
  std::uint64_t events_sent{0};
  std::uint64_t connections{0};      ///< subscribers ever admitted
  std::uint64_t disconnects{0};      ///< subscribers gone (clean, crashed or expelled)
  std::uint64_t refused{0};          ///< connections refused by credentials or limits
  std::uint64_t protocol_errors{0};  ///< connections closed because a peer misbehaved
  /// Memory placement (PublisherOptions::numa_node): the node asked for (auto resolved; -1
  /// none), and the pool's pages as the kernel reported them right after placement.
  int numa_node{-1};
  std::uint64_t pages{0};
  std::uint64_t pages_on_node{0};
  std::uint64_t stats_requests{0};  ///< stats requests answered (query_stats, parallax-inspect)
  pid_t publisher_pid{0};
  std::uint64_t uptime_ns{0};     ///< since bind()
  std::string format;             ///< latest format (caps) sent, if any
  bool format_truncated{false};   ///< format cut to 256 bytes (query_stats only)
  std::uint64_t slot_size{0};     ///< the pool's
  std::uint32_t slots{0};         ///< slots in all segments
  std::uint32_t slots_in_use{0};  ///< loaned, in flight or held by subscribers
  std::uint32_t slots_high_water{0};
  std::vector<PoolSegmentInfo> segments;
  /// Slots of subscribers that are gone (hang-up, close(), expelled) but may still map them:
  /// kept out of the pool until the subscriber's connection object is destroyed or its process
  /// exits. Bounded: such subscribers count against max_subscribers until then.
  std::uint64_t quarantined_slots{0};
  std::uint64_t quarantined_subscribers{0};
  std::uint64_t pools_replaced{0};    ///< replace_pool() calls
  std::uint64_t segments_retired{0};  ///< segment_retired messages sent (one per subscriber)
  memory::PoolStats pool;             ///< the current pool's counters (bytes included)
  std::vector<SubscriberInfo> subscribers;
};

/// Asks the publisher listening on `path` for its stats over its socket (the same credential
/// check as a subscriber; the request does not count as a subscriber and does not touch the
/// stream). Errors: not_found / unavailable (no publisher), permission_denied (refused),
/// timeout (no complete answer within `timeout`), data_loss (malformed answer).
[[nodiscard]] Result<PublisherStats> query_stats(
    std::string_view path, std::chrono::milliseconds timeout = std::chrono::seconds(2));

/// The sending side. Thread-safety: send()/send_event()/loan() may be called from one producer
/// thread at a time; stats()/subscriber_count()/interrupt()/resume() from any thread. A background
/// thread accepts subscribers, checks their credentials, and reclaims the leases of those that go
/// away.
class IpcPublisher {
 public:
  /// Listens on `path` (a filesystem Unix socket path, < 108 bytes). A stale socket file (no
  /// one accepting) is replaced; a live one gives already_exists; a non-socket file is never
  /// touched (already_exists).
  [[nodiscard]] static Result<IpcPublisher> bind(std::string_view path,
                                                 PublisherOptions options = {});

  IpcPublisher() noexcept;  ///< an empty handle; every call on it fails with failed_precondition
  IpcPublisher(IpcPublisher&&) noexcept;
  IpcPublisher& operator=(IpcPublisher&&) noexcept;
  IpcPublisher(const IpcPublisher&) = delete;
  IpcPublisher& operator=(const IpcPublisher&) = delete;
  /// close().
  ~IpcPublisher();

  /// A writable slot of the publisher's pool: fill it, freeze() it, send() it. Zero copy.
  /// Waits up to loan_timeout while all slots are held (subscribers' leases count).
  [[nodiscard]] Result<memory::Loan> loan();
  /// Same, failing at once with resource_exhausted.
  [[nodiscard]] Result<memory::Loan> try_loan();
  /// A loan of `size` bytes (the way to loan from a variable-size pool; a slot pool refuses a
  /// size above its slot with invalid_argument). Same waiting rules as loan() / try_loan().
  [[nodiscard]] Result<memory::Loan> loan(std::size_t size);
  [[nodiscard]] Result<memory::Loan> try_loan(std::size_t size);

  /// Makes `pool` the pool loan() hands out and send() shares (e.g. larger slots after a caps
  /// change). The old pool is retired: buffers and leases over it stay valid until released,
  /// its memory is freed when the last one goes, and each subscriber is told (segment_retired)
  /// once none of its leases names an old segment, so it unmaps them. Later send()s of old-pool
  /// buffers are copied into the new pool. Producer thread only (like send()).
  [[nodiscard]] Result<void> replace_pool(std::shared_ptr<memory::MemoryPool> pool);

  /// Makes sure a buffer of `bytes` fits one loan: a slot pool the publisher made (`pool`
  /// unset) whose slots are smaller is replaced (replace_pool()) by one made with the same
  /// options and slots of at least `bytes`. Returns whether it replaced the pool. Errors:
  /// resource_exhausted when that pool would exceed max_pool_bytes, or for a variable-size pool
  /// that can never hold such a block (the message names the budget); invalid_argument for a
  /// given pool that is too small. Producer thread only.
  [[nodiscard]] Result<bool> fit(std::size_t bytes);

  /// The copy path of the sink elements: loans `size` bytes (fit() first), lets `fill` write
  /// the payload, and sends it with `meta`. Waits for a free slot as long as it takes (slots
  /// come back as subscribers return them: backpressure, like GStreamer), until interrupt().
  /// An interrupt() while waiting for the slot (nothing sent yet) calls `on_interrupt` if
  /// given: true = wait again (GStreamer's wait_preroll after a pause said go on), false =
  /// return cancelled. Errors: cancelled (interrupt(); after the slot was taken the buffer may
  /// have reached some subscribers, as for send()), and those of fit(), loan() other than
  /// timeout, and send(). Counted in stats().copies / bytes_copied. Producer thread only.
  [[nodiscard]] Result<void> send_copy(std::size_t size,
                                       const std::function<void(std::span<std::byte>)>& fill,
                                       const Metadata& meta,
                                       const std::function<bool()>& on_interrupt = {});
  /// send_copy() of a buffer's bytes and metadata (a heap buffer, another pool's slot).
  [[nodiscard]] Result<void> send_copy(const memory::Buffer& buffer);

  /// Sends a buffer to every subscriber. A slot of our pool crosses as a descriptor; anything
  /// else (heap, another pool) is first copied once into a slot (stats().copies). Returns
  /// invalid_argument for a buffer larger than a slot. Never fails because of a subscriber:
  /// a subscriber that misbehaves is disconnected, one that is behind gets its policy.
  [[nodiscard]] Result<void> send(const memory::Buffer& buffer);
  /// freeze()s the loan and sends it.
  [[nodiscard]] Result<void> send(memory::Loan&& loan);

  /// Sends an event in order with the buffers. caps, stream_start and segment are sticky:
  /// a subscriber joining later receives the latest of each first (then eos if the stream
  /// has ended). flush_stop clears a sticky eos.
  [[nodiscard]] Result<void> send_event(const Event& event);
  /// send_event(Event::make_caps(Caps::from_text(caps))): `caps` is sent unchanged.
  [[nodiscard]] Result<void> set_format(std::string caps);
  /// send_event(Event::eos()).
  [[nodiscard]] Result<void> send_eos();

  /// Subscribers connected and past the handshake.
  [[nodiscard]] std::size_t subscriber_count() const;
  /// Waits until at least `n` subscribers are connected (timeout error otherwise).
  [[nodiscard]] Result<void> wait_for_subscribers(std::size_t n, std::chrono::milliseconds timeout);
  /// Makes a send()/send_event()/loan() that is blocked (waiting for a subscriber or a free
  /// slot), or the next one, return `cancelled` until resume(). Thread-safe: meant to be called
  /// from another thread than the producer's (GStreamer's unlock()/unlock_stop()). A cancelled
  /// send() may have reached some subscribers and not others; a cancelled send_event() still
  /// updates the sticky events.
  void interrupt();
  void resume();

  /// Waits until every connected subscriber has read (taken off its ring) everything sent to
  /// it so far, queued events included; subscribers that go away meanwhile no longer count.
  /// Errors: timeout (some subscriber is still behind after `timeout`; nothing is dropped),
  /// cancelled (interrupt()). Call it from the producer thread, after send_eos(), to keep the
  /// stream's memory valid until the consumers are through (the sinks do at EOS).
  [[nodiscard]] Result<void> drain(std::chrono::milliseconds timeout);

  /// Reclaims the leases subscribers have returned (send() and the background thread do this
  /// on their own; call it before reading pool occupancy in tests).
  void collect_returns();
  [[nodiscard]] PublisherStats stats() const;
  /// The current pool (replace_pool() may change it).
  [[nodiscard]] std::shared_ptr<memory::MemoryPool> pool() const;
  [[nodiscard]] const std::string& path() const;

  /// Clean shutdown: every subscriber gets end-of-stream after what was already sent, the
  /// socket file is unlinked, the background thread stops. Idempotent. After an EOS, first
  /// lingers (options.linger) until the subscribers have read through it.
  void close();

  struct Impl;

 private:
  explicit IpcPublisher(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

struct SubscriberOptions {
  /// What the publisher should do when this subscriber falls behind (empty: its default).
  std::optional<Policy> policy;
  /// Spin on the ring instead of sleeping (lowest latency, one core busy while waiting).
  bool busy_poll{false};
  /// In sleeping mode, the longest spin before going to sleep (0 = sleep at once). Adaptive:
  /// the full spin while buffers come within it, halved after each sleep that lasted longer
  /// (down to none), so a stream of buffers further apart (video frames) costs no spinning.
  std::chrono::nanoseconds spin{std::chrono::microseconds(20)};
  /// connect(): keep trying (every 10 ms) for this long while the socket is absent or refuses
  /// (0 = a single attempt).
  std::chrono::milliseconds connect_timeout{0};
  /// When the publisher goes away without an end-of-stream, reconnect (for up to
  /// connect_timeout or 5 s if that is 0) instead of failing; the stream restarts with the new
  /// publisher's sticky events.
  bool reconnect{false};
  /// Most memory segments one connection may announce (each is an fd and a mapping here), and
  /// most bytes they may map in total. A publisher that announces more is refused: the
  /// connection is closed with resource_exhausted. A pool that grows needs room for its growth.
  std::size_t max_segments{256};
  std::uint64_t max_mapped_bytes{std::uint64_t{64} << 30};  // 64 GiB of address space
  /// Lease pressure (like v4l2src copying when its pool runs low): while we hold fewer than
  /// this many leases, recv*() hands out zero-copy Buffers; past it, the payload is copied
  /// into local (heap) memory and the lease is returned at once, so a consumer that keeps
  /// buffers (encoders, aggregators, queues) never uses up the publisher's quota and stalls
  /// the stream. Counted in stats().copies / bytes_copied, logged once. Capped at the quota
  /// minus one. 0 = never copy (always zero copy; a consumer that holds `quota` buffers then
  /// waits forever for the next one). kCopyThresholdAuto = half the quota (at least 1).
  std::uint32_t copy_threshold{0};
  static constexpr std::uint32_t kCopyThresholdAuto = UINT32_MAX;
};

struct SubscriberStats {
  std::uint64_t buffers{0};           ///< buffers received
  std::uint64_t events{0};            ///< events received
  std::uint64_t dropped{0};           ///< buffers retracted by drop-oldest before we read them
  std::uint64_t wakeups{0};           ///< times we slept and were woken
  std::uint64_t segments{0};          ///< memory segments mapped
  std::uint64_t segments_retired{0};  ///< of those, retired by the publisher (unmapped once
                                      ///< no Buffer uses them)
  std::uint64_t reconnects{0};
  std::uint64_t copies{0};          ///< buffers copied past copy_threshold (lease returned at once)
  std::uint64_t bytes_copied{0};    ///< their bytes
  std::uint32_t copy_threshold{0};  ///< the effective threshold (0: never copy)
  std::uint32_t leases{0};          ///< buffers we hold now (alive Buffers from this subscriber)
  std::uint32_t quota{0};           ///< the publisher's lease cap for us
  pid_t publisher_pid{0};
  /// The NUMA node the publisher announced for the segments mapped so far: -1 unknown, or
  /// when they are on different nodes (the last announced one is in last_segment_node).
  int memory_node{-1};
  int last_segment_node{-1};
  /// Transit latency (receive time minus the publisher's send stamp, CLOCK_MONOTONIC) of the
  /// buffers received on the current and past connections: log2 buckets, bucket k counting
  /// [2^(k-1), 2^k) ns (bucket 0: 0 ns; the last one everything above 2^62).
  std::uint64_t latency_count{0};
  std::uint64_t latency_p50_ns{0};  ///< bucket upper bounds: accurate to a factor of two
  std::uint64_t latency_p99_ns{0};
  std::uint64_t latency_max_ns{0};
  std::uint64_t latency_sum_ns{0};  ///< sum of the measured latencies (mean = sum / count)
  std::array<std::uint64_t, 64> latency_log2{};
};

/// The receiving side. recv()/recv_item() are for one consumer thread; the Buffers it returns
/// are read-only views of the publisher's slots (no copy) and can be kept, cloned and dropped
/// from any thread; dropping the last reference returns the lease to the publisher.
/// Buffers stay valid (mapped) even after the subscriber or the publisher is gone.
class IpcSubscriber {
 public:
  /// Connects and completes the handshake (credentials, version, ring and segment mapping).
  /// Errors: not_found (no socket), unavailable (nobody listening / refused), permission_denied
  /// (the publisher refused our credentials), data_loss (the publisher spoke nonsense).
  [[nodiscard]] static Result<IpcSubscriber> connect(std::string_view path,
                                                     SubscriberOptions options = {});

  IpcSubscriber() noexcept;
  IpcSubscriber(IpcSubscriber&&) noexcept;
  IpcSubscriber& operator=(IpcSubscriber&&) noexcept;
  IpcSubscriber(const IpcSubscriber&) = delete;
  IpcSubscriber& operator=(const IpcSubscriber&) = delete;
  ~IpcSubscriber();

  /// The next buffer; std::nullopt at end of stream (eos, or the publisher closed cleanly).
  /// Events are applied on the way (see format()). After an eos, calling again waits for a
  /// new stream. Errors: unavailable (publisher vanished without a clean close), data_loss
  /// (malformed message: the connection is closed), cancelled (interrupt()).
  [[nodiscard]] Result<std::optional<memory::Buffer>> recv();
  /// Same, failing with timeout after `timeout`.
  [[nodiscard]] Result<std::optional<memory::Buffer>> recv_for(std::chrono::nanoseconds timeout);

  /// The next buffer or event, in stream order (eos is delivered as an Event); std::nullopt
  /// only when the publisher closed cleanly. For elements that forward events downstream.
  [[nodiscard]] Result<std::optional<Item>> recv_item();
  [[nodiscard]] Result<std::optional<Item>> recv_item_for(std::chrono::nanoseconds timeout);

  /// The latest format (the caps event's text) seen, if any.
  [[nodiscard]] const std::optional<std::string>& format() const;
  /// The latest segment seen, if any.
  [[nodiscard]] const std::optional<StreamSegment>& segment() const;

  /// Makes a blocked (or the next) recv*() return cancelled until resume(). Thread-safe
  /// (GStreamer's unlock()/unlock_stop()).
  void interrupt();
  void resume();

  [[nodiscard]] SubscriberStats stats() const;
  /// The same figures, safe to read from any thread while recv*() runs (stats() is for the
  /// consumer thread): a copy the consumer publishes before it sleeps and, after a request like
  /// this one, on its way out of recv*(). Exact for a waiting consumer; for a busy one it lags
  /// by up to the time between two calls. What the metrics export and parallaxsrc read.
  [[nodiscard]] SubscriberStats stats_snapshot() const;
  /// Whether the connection is up (false after the publisher went away or a protocol error).
  [[nodiscard]] bool connected() const;
  /// Closes the connection; Buffers already received stay valid. Idempotent.
  void close();

  struct Impl;

 private:
  explicit IpcSubscriber(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace parallax::link
