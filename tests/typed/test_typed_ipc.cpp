// SPDX-License-Identifier: MIT OR Apache-2.0
// Tests of typed IPC (parallax/typed_ipc.h) across two real processes: this binary re-executes
// itself with --typed-ipc-peer ROLE PATH N to play the publisher (typed, of another type, or a
// hostile raw publisher), and the test process subscribes.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "parallax/typed_ipc.h"

using namespace parallax;
using namespace std::chrono_literals;

namespace plxtest {

struct Reading {
  std::uint64_t seq{0};
  std::string sensor;
  std::vector<double> values;
  std::optional<std::string> note;
  std::vector<std::string> tags;
  bool operator==(const Reading&) const = default;
};
PLX_ARCHIVE(Reading, seq, sensor, values, note, tags);

// Same first fields, another shape: its schema hash differs.
struct Other {
  std::uint64_t seq{0};
  std::string sensor;
};
PLX_ARCHIVE(Other, seq, sensor);

Reading make_reading(std::uint64_t i) {
  Reading r;
  r.seq = i;
  r.sensor = "sensor-" + std::to_string(i % 7) + "-ü";  // non-ASCII UTF-8 on purpose
  for (std::uint64_t k = 0; k < i % 5; ++k)
    r.values.push_back(static_cast<double>(i) + k / 4.0);
  if (i % 3 == 0) r.note = "note " + std::to_string(i);
  for (std::uint64_t k = 0; k < i % 4; ++k)
    r.tags.push_back("t" + std::to_string(k));
  return r;
}

link::PublisherOptions small_slots() {
  link::PublisherOptions o;
  o.slot_size = 4096;
  o.slot_count = 64;
  return o;
}

// After EOS the publisher waits (at most 10 s) for the subscriber to go away, so that it
// never closes the stream under a subscriber still reading, and exits on its own if the test
// died.
template <typename Pub>
int finish(Pub& pub) {
  if (!pub.send_eos()) return 3;
  for (int i = 0; i < 1000 && pub.subscriber_count() > 0; ++i)
    std::this_thread::sleep_for(10ms);
  pub.close();
  return 0;
}

// --- the peer process ---

int peer_readings(const std::string& path, int n) {
  auto pub = link::TypedPublisher<Reading>::bind(path, small_slots());
  if (!pub) return std::fprintf(stderr, "bind: %s\n", pub.error().to_string().c_str()), 2;
  if (!pub->wait_for_subscribers(1, 10s)) return 2;
  for (int i = 0; i < n; ++i) {
    Metadata m;
    m.sequence = static_cast<std::uint64_t>(i);
    if (auto r = pub->send(make_reading(static_cast<std::uint64_t>(i)), m); !r)
      return std::fprintf(stderr, "send: %s\n", r.error().to_string().c_str()), 3;
  }
  return finish(*pub);
}

int peer_other(const std::string& path, int n) {
  auto pub = link::TypedPublisher<Other>::bind(path, small_slots());
  if (!pub || !pub->wait_for_subscribers(1, 10s)) return 2;
  for (int i = 0; i < n; ++i)
    if (!pub->send(Other{static_cast<std::uint64_t>(i), "other"})) return 3;
  return finish(*pub);
}

// A hostile publisher: announces archives of Reading, then sends what the role says.
int peer_raw(const std::string& role, const std::string& path) {
  auto pub = link::IpcPublisher::bind(path, small_slots());
  if (!pub) return 2;
  if (role != "wrong-header" && !pub->set_format(link::archive_format<Reading>())) return 2;
  if (!pub->wait_for_subscribers(1, 10s)) return 2;
  auto send_bytes = [&](const std::vector<std::byte>& bytes) {
    auto loan = pub->loan();
    if (!loan || !loan->set_size(bytes.size())) return false;
    std::memcpy(loan->data().data(), bytes.data(), bytes.size());
    return pub->send(std::move(*loan)).ok();
  };
  if (role == "garbage") {
    std::vector<std::byte> junk(200);
    for (std::size_t i = 0; i < junk.size(); ++i)
      junk[i] = std::byte(0xA5 ^ (i * 31));
    if (!send_bytes(junk)) return 3;
  } else if (role == "corrupt") {
    // One valid archive, then the same archive with the root's `sensor` length forged to
    // point far outside the buffer, then a valid one again (which must not be read).
    auto good = archive::serialize(make_reading(4), {.header = true});
    if (!good || !send_bytes(*good)) return 3;
    std::vector<std::byte> bad = *good;
    using A = archive::Archived<Reading>;
    const std::size_t root = bad.size() - sizeof(A);
    const std::size_t len_at = root + offsetof(A, sensor) + 4;  // i32 rel, then u32 len
    const std::uint32_t huge = 0x10000000;
    std::memcpy(bad.data() + len_at, &huge, sizeof huge);
    if (!send_bytes(bad) || !send_bytes(*good)) return 3;
  } else if (role == "wrong-header") {
    // No format event; a perfectly valid archive of another type.
    auto other = archive::serialize(Other{1, "x"}, {.header = true});
    if (!other || !send_bytes(*other)) return 3;
  } else {
    return 64;
  }
  return finish(*pub);
}

// An honest publisher with a small pool: sends n readings, waits until the subscriber is gone
// (it closed, keeping its views), then keeps loaning and filling slots with 'A's. Before
// issue 12 the gone subscriber's slots were reused at once and its kept views read 'AAAA' as
// string lengths.
int peer_overwrite(const std::string& path, int n) {
  auto o = small_slots();
  o.slot_count = 16;  // a grant of 4 (reserve 2, at most 3/4 of the 14 left)
  o.max_leases_per_subscriber = 4;
  auto pub = link::TypedPublisher<Reading>::bind(path, o);
  if (!pub || !pub->wait_for_subscribers(1, 10s)) return 2;
  for (int i = 0; i < n; ++i)
    if (!pub->send(make_reading(static_cast<std::uint64_t>(i)))) return 3;
  for (int i = 0; i < 1000 && pub->subscriber_count() > 0; ++i)
    std::this_thread::sleep_for(10ms);
  if (pub->subscriber_count() != 0) return 4;
  for (int i = 0; i < 200; ++i) {
    auto loan = pub->untyped().loan();
    if (!loan) return 5;
    std::memset(loan->data().data(), 0x41, loan->capacity());
    if (!loan->set_size(loan->capacity()) || !pub->untyped().send(std::move(*loan))) return 6;
  }
  pub->close();
  return 0;
}

// A hostile publisher: sends make_reading(7) and keeps writing access to the slot (its pool is
// mapped writable). Once PATH.go exists (the subscriber validated the archive) it rewrites the
// slot: "rewrite-valid" with a valid archive of the same shape whose seq is 99, "rewrite-hostile"
// with 'A' bytes (string lengths 0x41414141). Then creates PATH.done and waits for the
// subscriber to leave.
int peer_rewrite(const std::string& role, const std::string& path) {
  auto pub = link::TypedPublisher<Reading>::bind(path, small_slots());
  if (!pub || !pub->wait_for_subscribers(1, 10s)) return 2;
  auto loan = pub->untyped().loan();
  if (!loan) return 2;
  auto n = link::serialize_archive_into(make_reading(7), *loan);
  if (!n) return 2;
  std::byte* slot = loan->data().data();
  Reading alt = make_reading(7);
  alt.seq = 99;
  auto alt_bytes = archive::serialize(alt, {.header = true});
  if (!alt_bytes || alt_bytes->size() != *n) return 2;
  if (!pub->untyped().send(std::move(*loan))) return 3;
  struct stat st {};
  for (int i = 0; i < 1000 && ::stat((path + ".go").c_str(), &st) != 0; ++i)
    std::this_thread::sleep_for(10ms);
  if (role == "rewrite-valid")
    std::memcpy(slot, alt_bytes->data(), alt_bytes->size());
  else
    std::memset(slot + 16, 0x41, *n - 16);  // keep the header, forge everything after it
  if (FILE* f = std::fopen((path + ".done").c_str(), "w")) std::fclose(f);
  return finish(*pub);
}

int peer_main(int argc, char** argv) {
  if (argc != 5) return 64;
  const std::string role = argv[2], path = argv[3];
  const int n = std::atoi(argv[4]);
  if (role == "readings") return peer_readings(path, n);
  if (role == "other") return peer_other(path, n);
  if (role == "overwrite") return peer_overwrite(path, n);
  if (role == "rewrite-valid" || role == "rewrite-hostile") return peer_rewrite(role, path);
  return peer_raw(role, path);
}

// --- the test side ---

std::string unique_path() {
  static std::atomic<int> counter{0};
  return "/tmp/plx-typed-ipc-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) +
         ".sock";
}

// A peer process: this binary re-executed with --typed-ipc-peer (tests/helpers).
class Peer : public parallax::test::Process {
 public:
  Peer(const std::string& role, const std::string& path, int n)
      : Process({parallax::test::self_exe(), "--typed-ipc-peer", role, path, std::to_string(n)}) {}
};

template <typename T>
link::TypedSubscriber<T> connect_to(const std::string& path) {
  link::TypedSubscriberOptions o;
  o.ipc.connect_timeout = 10s;
  auto sub = link::TypedSubscriber<T>::connect(path, o);
  EXPECT_TRUE(sub.ok()) << (sub.ok() ? "" : sub.error().to_string());
  return std::move(sub).into_inner();
}

}  // namespace plxtest

using namespace plxtest;

// --- in-process checks of the pieces ---

TEST(TypedIpcFormat, AnnouncesNameAndSchemaHash) {
  const std::string f = link::archive_format<Reading>();
  EXPECT_EQ(f, "application/x-parallax-archive, type=(string)Reading, schema=(string)" +
                   link::schema_hex(archive::schema_hash_v<Reading>));
  const auto parsed = link::parse_archive_format(f);
  EXPECT_EQ(parsed.media_type, "application/x-parallax-archive");
  EXPECT_EQ(parsed.type, "Reading");
  EXPECT_EQ(parsed.schema.size(), 16u);
  EXPECT_NE(link::archive_format<Reading>(), link::archive_format<Other>());
  EXPECT_EQ(link::archive_type_name<std::uint32_t>(), "u32");
}

TEST(TypedIpcFormat, CheckRefusesOtherTypesAndMediaTypes) {
  EXPECT_TRUE(link::check_archive_format<Reading>(link::archive_format<Reading>(), "t").ok());
  // Spacing and casts written differently are still the same format.
  const std::string loose = "application/x-parallax-archive,type=Reading,schema=\"" +
                            link::schema_hex(archive::schema_hash_v<Reading>) + "\"";
  EXPECT_TRUE(link::check_archive_format<Reading>(loose, "t").ok());

  auto other = link::check_archive_format<Reading>(link::archive_format<Other>(), "sub");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, Errc::failed_precondition);
  EXPECT_NE(other.error().message.find("type=(string)Other"), std::string::npos);
  EXPECT_NE(other.error().message.find("expected archives of Reading"), std::string::npos);

  EXPECT_FALSE(link::check_archive_format<Reading>("video/x-raw, format=RGBA", "t").ok());
  EXPECT_FALSE(link::check_archive_format<Reading>("", "t").ok());
}

TEST(TypedIpcView, ValidatesOnceAndSharesBytesOnCopy) {
  auto bytes = archive::serialize(make_reading(6), {.header = true});
  ASSERT_TRUE(bytes.ok());
  auto t = link::Typed<Reading>::from_buffer(memory::Buffer::from_vector(std::move(*bytes)));
  ASSERT_TRUE(t.ok()) << t.error().to_string();

  link::Typed<Reading> copy = *t;
  link::Typed<Reading> moved = std::move(*t);

  EXPECT_FALSE(t->has_value());  // moved-from is empty
  ASSERT_TRUE(copy.has_value());
  EXPECT_EQ(copy.get(), moved.get());  // same bytes, no re-validation, no copy
  EXPECT_EQ(copy->seq, 6u);
  EXPECT_EQ(std::string_view(moved->sensor), "sensor-6-ü");
  EXPECT_EQ(moved.deserialize(), make_reading(6));
}

TEST(TypedIpcView, RejectsBytesWithoutHeaderOrOfAnotherType) {
  auto plain = archive::serialize(make_reading(1));  // no header
  ASSERT_TRUE(plain.ok());
  auto a = link::Typed<Reading>::from_buffer(memory::Buffer::from_vector(std::move(*plain)));
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code, Errc::data_loss);

  auto other = archive::serialize(Other{1, "x"}, {.header = true});
  ASSERT_TRUE(other.ok());
  auto b = link::Typed<Reading>::from_buffer(memory::Buffer::from_vector(std::move(*other)));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, Errc::data_loss);
}

TEST(TypedIpcPublisher, ValueLargerThanASlotIsResourceExhausted) {
  const std::string path = unique_path();
  link::PublisherOptions o;
  o.slot_size = 256;
  o.slot_count = 4;
  auto pub = link::TypedPublisher<Reading>::bind(path, o);
  ASSERT_TRUE(pub.ok()) << pub.error().to_string();
  Reading big = make_reading(1);
  big.sensor = std::string(1000, 'x');

  auto r = pub->send(big);

  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::resource_exhausted);
  EXPECT_NE(r.error().message.find("slot holds"), std::string::npos) << r.error().message;
  EXPECT_TRUE(pub->send(make_reading(1)).ok());  // the slot went back; small values still go
}

TEST(TypedIpcPublisher, RefusesToChangeItsFormat) {
  auto pub = link::TypedPublisher<Reading>::bind(unique_path(), small_slots());
  ASSERT_TRUE(pub.ok());
  auto r = pub->send_event(link::Event::make_caps(Caps::from_text("text/plain")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
}

// --- across two processes ---

TEST(TypedIpcCrossProcess, StructWithStringsVectorsOptionalsRoundTrips) {
  const std::string path = unique_path();
  Peer peer("readings", path, 12);
  ASSERT_TRUE(peer.started());
  auto sub = connect_to<Reading>(path);

  std::vector<link::Typed<Reading>> got;
  for (;;) {
    auto r = sub.recv_for(10s);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    if (!r->has_value()) break;
    got.push_back(std::move(**r));
  }

  ASSERT_EQ(got.size(), 12u);
  EXPECT_EQ(sub.format(), link::archive_format<Reading>());
  for (std::uint64_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].deserialize(), make_reading(i)) << "value " << i;
    EXPECT_EQ(got[i].metadata().sequence, i);
  }
  const auto& v = *got[9];  // read in place: 9 % 3 == 0 has a note, 4 values, 1 tag
  ASSERT_TRUE(v.note.has_value());
  EXPECT_EQ(std::string_view(*v.note.get()), "note 9");
  ASSERT_EQ(v.values.size(), 4u);
  EXPECT_DOUBLE_EQ(v.values[3], 9.75);
  EXPECT_FALSE(got[1]->note.has_value());
  sub.close();
  EXPECT_EQ(peer.wait(), 0);
}

TEST(TypedIpcCrossProcess, ManyMessagesArriveInOrderAndOutliveThePublisher) {
  const std::string path = unique_path();
  constexpr int kCount = 3000;  // far more than the 64 slots: slots are recycled
  Peer peer("readings", path, kCount);
  ASSERT_TRUE(peer.started());
  auto sub = connect_to<Reading>(path);

  std::optional<link::Typed<Reading>> kept;
  std::uint64_t next = 0;
  for (;;) {
    auto r = sub.recv_for(10s);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    if (!r->has_value()) break;
    ASSERT_EQ((**r)->seq, next);
    ASSERT_EQ(std::string_view((**r)->sensor), make_reading(next).sensor);
    if (next == 1234) kept = std::move(**r);
    ++next;
  }
  EXPECT_EQ(next, static_cast<std::uint64_t>(kCount));
  sub.close();
  EXPECT_EQ(peer.wait(), 0);

  // The publisher process is gone; the view still reads its (sealed, mapped) slot.
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->deserialize(), make_reading(1234));
}

TEST(TypedIpcCrossProcess, PublisherOfAnotherTypeIsRefused) {
  const std::string path = unique_path();
  Peer peer("other", path, 3);
  ASSERT_TRUE(peer.started());
  auto sub = connect_to<Reading>(path);

  auto r = sub.recv_for(10s);

  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::failed_precondition);
  EXPECT_NE(r.error().message.find("type=(string)Other"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("Reading"), std::string::npos);
  // The connection is closed; the error stays.
  EXPECT_FALSE(sub.connected());
  auto again = sub.recv_for(1s);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::failed_precondition);
  EXPECT_EQ(peer.wait(), 0);
}

TEST(TypedIpcCrossProcess, ArchiveOfAnotherTypeWithoutFormatIsDataLoss) {
  const std::string path = unique_path();
  Peer peer("wrong-header", path, 1);
  ASSERT_TRUE(peer.started());
  auto sub = connect_to<Reading>(path);

  auto r = sub.recv_for(10s);

  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::data_loss);
  EXPECT_NE(r.error().message.find("schema"), std::string::npos) << r.error().message;
  EXPECT_EQ(peer.wait(), 0);
}

TEST(TypedIpcCrossProcess, GarbageFromAHostilePublisherIsDataLoss) {
  const std::string path = unique_path();
  Peer peer("garbage", path, 1);
  ASSERT_TRUE(peer.started());
  auto sub = connect_to<Reading>(path);

  auto r = sub.recv_for(10s);

  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::data_loss);
  EXPECT_NE(r.error().message.find("invalid archive of Reading"), std::string::npos)
      << r.error().message;
  std::printf("  what the subscriber reports: %s\n", r.error().to_string().c_str());
  EXPECT_EQ(peer.wait(), 0);
}

TEST(TypedIpcCrossProcess, ForgedLengthIsDataLossNamingTheFieldAndTheConnectionCloses) {
  const std::string path = unique_path();
  Peer peer("corrupt", path, 1);
  ASSERT_TRUE(peer.started());
  auto sub = connect_to<Reading>(path);

  auto first = sub.recv_for(10s);
  auto second = sub.recv_for(10s);
  auto third = sub.recv_for(10s);

  ASSERT_TRUE(first.ok()) << first.error().to_string();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((**first).deserialize(), make_reading(4));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Errc::data_loss);
  EXPECT_NE(second.error().message.find("sensor"), std::string::npos) << second.error().message;
  EXPECT_NE(second.error().message.find("at byte"), std::string::npos) << second.error().message;
  std::printf("  what the subscriber reports: %s\n", second.error().to_string().c_str());
  ASSERT_FALSE(third.ok());  // the valid archive after it is not read: the peer is not trusted
  EXPECT_EQ(third.error().code, Errc::data_loss);
  EXPECT_FALSE(sub.connected());
  // What was received before stays readable.
  EXPECT_EQ(std::string_view((**first)->sensor), make_reading(4).sensor);
  EXPECT_EQ(peer.wait(), 0);
}

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--typed-ipc-peer") == 0) return peer_main(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

// Issue 12, item 2: views kept after close() while the (honest) publisher goes on reusing its
// slots. The slots stay quarantined while this process may read them.
TEST(TypedIpcCrossProcess, ViewsKeptAfterCloseAreNotOverwritten) {
  const std::string path = unique_path();
  Peer peer("overwrite", path, 4);
  ASSERT_TRUE(peer.started());
  auto sub = connect_to<Reading>(path);
  std::vector<link::Typed<Reading>> kept;
  while (kept.size() < 4) {
    auto r = sub.recv_for(10s);
    ASSERT_TRUE(r.ok() && r->has_value()) << (r.ok() ? "eos" : r.error().to_string());
    kept.push_back(std::move(**r));
  }
  sub.close();
  EXPECT_EQ(peer.wait(), 0);  // it wrote 200 slots of 'A' meanwhile
  for (std::uint64_t i = 0; i < kept.size(); ++i) {
    EXPECT_EQ(std::string_view(kept[i]->sensor), make_reading(i).sensor) << i;
    EXPECT_EQ(kept[i].deserialize(), make_reading(i)) << i;
  }
}

// ---- a publisher rewriting a slot it sent (issue 12) -------------------------------------------

namespace {

// Receives the one archive of a rewrite peer, signals it to rewrite, and waits until it did.
link::Typed<Reading> receive_then_let_rewrite(link::TypedSubscriber<Reading>& sub,
                                              const std::string& path) {
  auto r = sub.recv_for(10s);
  EXPECT_TRUE(r.ok() && r->has_value()) << (r.ok() ? "eos" : r.error().to_string());
  if (!r.ok() || !r->has_value()) return {};
  link::Typed<Reading> t = std::move(**r);
  EXPECT_EQ(t->seq, 7u);
  if (FILE* f = std::fopen((path + ".go").c_str(), "w")) std::fclose(f);
  struct stat st {};
  for (int i = 0; i < 1000 && ::stat((path + ".done").c_str(), &st) != 0; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(::stat((path + ".done").c_str(), &st), 0) << "the peer did not rewrite";
  return t;
}

}  // namespace

// What private_copy protects against: a zero-copy view reads the publisher's slot, and the
// publisher can still write there after validation (here a valid archive, so reading it is
// safe): the view's value changes under it.
TEST(TypedIpcRewrite, ZeroCopyViewSeesAPublisherRewritingItsSlot) {
  const std::string path = unique_path();
  Peer peer("rewrite-valid", path, 1);
  ASSERT_TRUE(peer.started());
  auto sub = connect_to<Reading>(path);
  auto t = receive_then_let_rewrite(sub, path);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->seq, 99u) << "the slot was not rewritten under the view (test premise)";
  t = {};
  sub.close();
  EXPECT_EQ(peer.wait(), 0);
  ::unlink((path + ".go").c_str());
  ::unlink((path + ".done").c_str());
}

// With private_copy the view reads only the bytes it validated, whatever the publisher writes
// into its slot afterwards: the same value for a valid rewrite, and no read outside the archive
// for a hostile one (lengths of 0x41414141).
TEST(TypedIpcRewrite, PrivateCopyViewIsImmuneToRewrites) {
  for (const char* role : {"rewrite-valid", "rewrite-hostile"}) {
    SCOPED_TRACE(role);
    const std::string path = unique_path();
    Peer peer(role, path, 1);
    ASSERT_TRUE(peer.started());
    link::TypedSubscriberOptions o;
    o.ipc.connect_timeout = 10s;
    o.private_copy = true;
    auto sub = link::TypedSubscriber<Reading>::connect(path, o);
    ASSERT_TRUE(sub.ok()) << sub.error().to_string();
    auto t = receive_then_let_rewrite(*sub, path);
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->seq, 7u);
    EXPECT_EQ(std::string_view(t->sensor), make_reading(7).sensor);
    EXPECT_EQ(t.deserialize(), make_reading(7));
    EXPECT_EQ(sub->private_copies(), 1u);
    EXPECT_EQ(sub->stats().leases, 0u);  // the slot's lease went back at the copy
    t = {};
    sub->close();
    EXPECT_EQ(peer.wait(), 0);
    ::unlink((path + ".go").c_str());
    ::unlink((path + ".done").c_str());
  }
}
