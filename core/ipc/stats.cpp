// SPDX-License-Identifier: MIT OR Apache-2.0
// query_stats(): the client side of the stats request (docs/observability.md). Connects like a
// subscriber, sends stats_request instead of hello, and reads the bounded reply.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <cstring>

#include "base/wait.h"
#include "ipc/os.h"
#include "ipc/wire.h"
#include "parallax/ipc.h"

namespace parallax::link {

Result<PublisherStats> query_stats(std::string_view path, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  PLX_ASSIGN(sockaddr_un addr, os::make_addr(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    if (e == ENOENT) return err(Errc::not_found, "no publisher socket at " + std::string(path));
    if (e == ECONNREFUSED)
      return err(Errc::unavailable, "nobody is listening on " + std::string(path));
    return Error::from_errno("connect " + std::string(path), e);
  }
  // A refused peer may find the connection closed already: the refusal is then the answer.
  auto sent = os::send_msg(fd.get(), wire::encode_stats_request());
  PublisherStats st;
  bool have_head = false;
  std::uint32_t want_segments = 0, want_subs = 0;
  for (;;) {
    PLX_ASSIGN(base::Wait w, base::wait_fd(fd.get(), POLLIN, -1, deadline));
    if (w == base::Wait::timed_out)
      return err(Errc::timeout, "no complete stats answer from " + std::string(path));
    std::byte buf[wire::kMaxMsgSize];
    PLX_ASSIGN(os::Received r, os::recv_msg(fd.get(), buf, true));
    if (r.would_block) continue;
    if (r.closed) {
      if (!sent) return std::move(sent).error();
      return err(Errc::unavailable, "publisher closed the connection before a complete answer");
    }
    if (!r.fds.empty()) return err(Errc::data_loss, "stats answer carried file descriptors");
    PLX_ASSIGN(wire::StatsMsg m, wire::decode_stats_msg(std::span<const std::byte>(buf, r.size)));
    if (auto* rf = std::get_if<wire::Refuse>(&m))
      return err(rf->code, "publisher refused the stats request: " + rf->text);
    if (auto* head = std::get_if<PublisherStats>(&m)) {
      if (have_head) return err(Errc::data_loss, "stats answer: two headers");
      st = std::move(*head);
      have_head = true;
      // The header's counts bound what may follow (checked again at stats_end).
      continue;
    }
    if (!have_head) return err(Errc::data_loss, "stats answer does not start with its header");
    if (auto* seg = std::get_if<wire::StatsSegment>(&m)) {
      if (!st.subscribers.empty() || ++want_segments > 65535)
        return err(Errc::data_loss, "stats answer: segment out of place");
      st.segments.push_back(PoolSegmentInfo{seg->segment_id, seg->size, seg->slots});
    } else if (auto* sub = std::get_if<SubscriberInfo>(&m)) {
      if (++want_subs > 65535) return err(Errc::data_loss, "stats answer: too many subscribers");
      st.subscribers.push_back(*sub);
    } else if (auto* end = std::get_if<wire::StatsEnd>(&m)) {
      if (end->segments != st.segments.size() || end->subscribers != st.subscribers.size())
        return err(Errc::data_loss, "stats answer: counts disagree with stats_end");
      return st;
    }
  }
}

}  // namespace parallax::link
