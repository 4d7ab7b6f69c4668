// SPDX-License-Identifier: MIT OR Apache-2.0
// tcpsrc and tcpsink: a raw byte stream over TCP, as client or server. Sockets are
// non-blocking and every wait also watches an eventfd (base/wait.h), so stop() and EOS requests
// always interrupt them: a stalled peer can hold up only the thread that talks to it.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/wait.h"
#include "common.h"
#include "parallax/unique_fd.h"

namespace parallax::elements {
namespace {

using namespace parallax::pipeline;

enum class Wait { ready, woken, failed };

// The socket side shared by both elements.
class TcpEndpoint {
 public:
  Result<void> open(Element& owner, bool server, std::string host, std::int64_t port) {
    owner_ = &owner;
    server_ = server;
    host_ = std::move(host);
    port_ = static_cast<std::uint16_t>(port);
    conn_.reset();
    listen_.reset();
    PLX_ASSIGN(wake_, base::make_eventfd());
    bound_port_.store(0);
    if (!server_) return ok();
    PLX_ASSIGN(sockaddr_storage addr, resolve());
    int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error::from_errno("socket");
    listen_.reset(fd);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), addr_len(addr)) < 0)
      return Error::from_errno("could not bind " + where());
    if (::listen(fd, 1) < 0) return Error::from_errno("could not listen on " + where());
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
    bound_port_.store(ntohs(bound.ss_family == AF_INET6
                                ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                : reinterpret_cast<sockaddr_in*>(&bound)->sin_port));
    return ok();
  }

  void close() {
    conn_.reset();
    listen_.reset();
  }
  void wake() {
    if (wake_.valid()) base::signal_eventfd(wake_.get());  // never drained: later waits return too
  }
  [[nodiscard]] std::uint64_t bound_port() const { return bound_port_.load(); }
  [[nodiscard]] bool connected() const { return conn_.valid(); }
  [[nodiscard]] int fd() const { return conn_.get(); }

  Wait wait(int fd, short events) {
    auto w = base::wait_fd(fd, events, wake_.get());
    if (!w) {
      wait_error_ = std::move(w).error();
      return Wait::failed;
    }
    return *w == base::Wait::ready ? Wait::ready : Wait::woken;
  }

  // Establishes the connection (accept or connect). ok with connected(), or a flow to return.
  FlowReturn ensure_connected() {
    if (conn_.valid()) return FlowReturn::ok;
    if (server_) {
      for (;;) {
        int c = ::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0) {
          conn_.reset(c);
          break;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          return fail("accept on " + where());
        if (Wait w = wait(listen_.get(), POLLIN); w != Wait::ready) return woken(w);
      }
    } else {
      auto addr = resolve();
      if (!addr) {
        owner_->post_error(addr.error().code, addr.error().message);
        return FlowReturn::error;
      }
      int fd = ::socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) return fail("socket");
      conn_.reset(fd);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&*addr), addr_len(*addr)) < 0) {
        if (errno != EINPROGRESS) return fail("could not connect to " + where());
        if (Wait w = wait(fd, POLLOUT); w != Wait::ready) return woken(w);
        int e = 0;
        socklen_t len = sizeof e;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len);
        if (e != 0) return fail("could not connect to " + where(), e);
      }
    }
    int one = 1;
    ::setsockopt(conn_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return FlowReturn::ok;
  }

  FlowReturn fail(const std::string& what, int e = errno) {
    conn_.reset();
    owner_->post_error(errc_from_errno(e), Error::from_errno(what, e).message);
    return FlowReturn::error;
  }
  FlowReturn woken(Wait w) {
    if (w == Wait::failed) {
      conn_.reset();
      owner_->post_error(wait_error_.code, wait_error_.message);
      return FlowReturn::error;
    }
    if (owner_->stopping()) return FlowReturn::flushing;
    return FlowReturn::eos;  // request_eos()
  }
  [[nodiscard]] std::string where() const { return host_ + ":" + std::to_string(port_); }

 private:
  static socklen_t addr_len(const sockaddr_storage& a) {
    return a.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  }
  Result<sockaddr_storage> resolve() const {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (server_ ? AI_PASSIVE : 0);
    addrinfo* res = nullptr;
    std::string port = std::to_string(port_);
    int rc = ::getaddrinfo(host_.c_str(), port.c_str(), &hints, &res);
    if (rc != 0 || res == nullptr)
      return err(Errc::not_found, "cannot resolve '" + host_ + "': " + ::gai_strerror(rc));
    sockaddr_storage out{};
    std::memcpy(&out, res->ai_addr, res->ai_addrlen);
    ::freeaddrinfo(res);
    return out;
  }

  Element* owner_{nullptr};
  bool server_{false};
  std::string host_;
  std::uint16_t port_{0};
  UniqueFd listen_;
  UniqueFd conn_;
  UniqueFd wake_;
  Error wait_error_;  // why the last wait() failed
  std::atomic<std::uint64_t> bound_port_{0};
};

// The `mode` property's numbers (read with prop_enum(); set_property refuses other values).
constexpr std::int64_t kModeClient = 0;
constexpr std::int64_t kModeServer = 1;

std::vector<PropertySpec> tcp_properties(bool src) {
  std::vector<PropertySpec> v = {
      PropertySpec::enumeration(
          "mode", "client",
          {{kModeClient, "client", "connect to host:port"},
           {kModeServer, "server", "listen on host:port and serve the first client"}},
          "Connect or listen"),
      PropertySpec::string("host", "127.0.0.1", "Host to connect to, or address to listen on"),
      PropertySpec::int64("port", 4953, 0, 65535, "TCP port (0 in server mode: any free port)"),
      PropertySpec::uint64("bound-port", 0, 0, 65535, "The port actually listened on (server mode)")
          .with_flags(kPropReadable)};
  if (src) {
    v.push_back(PropertySpec::uint64("blocksize", 4096, 1, 64u << 20, "Max bytes per buffer"));
    v.push_back(affinity_property());
  }
  return v;
}

class TcpSrc final : public SourceElement {
 public:
  Result<void> start() override {
    blocksize_ = prop<std::uint64_t>("blocksize");
    PLX_TRY(ep_.open(*this, prop_enum("mode") == kModeServer, prop<std::string>("host"),
                     prop<std::int64_t>("port")));
    PLX_ASSIGN(pool_, make_heap_pool(blocksize_, 16));
    pool_metrics_ = pool_metrics(*this, pool_);
    offset_ = 0;
    return ok();
  }
  Result<void> stop() override {
    ep_.close();
    pool_metrics_.reset();
    pool_.reset();
    return ok();
  }
  void unlock() override { ep_.wake(); }
  void request_eos() override {
    SourceElement::request_eos();
    ep_.wake();
  }

 protected:
  FlowReturn create(Buffer& out) override {
    if (FlowReturn fr = ep_.ensure_connected(); fr != FlowReturn::ok) return fr;
    memory::Loan loan;
    if (FlowReturn fr = loan_slot(*this, *pool_, loan); fr != FlowReturn::ok) return fr;
    (void)loan.set_size(blocksize_);
    auto bytes = loan.data();
    for (;;) {
      ssize_t n = ::recv(ep_.fd(), bytes.data(), bytes.size(), 0);
      if (n > 0) {
        (void)loan.set_size(static_cast<std::size_t>(n));
        Metadata& m = loan.metadata();
        m.offset = offset_;
        m.offset_end = offset_ + static_cast<std::uint64_t>(n);
        offset_ += static_cast<std::uint64_t>(n);
        out = std::move(loan).freeze();
        return FlowReturn::ok;
      }
      if (n == 0) return FlowReturn::eos;  // the peer closed: end of stream
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        return ep_.fail("could not receive from " + ep_.where());
      if (Wait w = ep_.wait(ep_.fd(), POLLIN); w != Wait::ready) return ep_.woken(w);
    }
  }
  PropertyValue read_property(const PropertySpec& spec,
                              const PropertyValue& stored) const override {
    if (spec.name == "bound-port") return ep_.bound_port();
    return stored;
  }

 private:
  TcpEndpoint ep_;
  std::uint64_t blocksize_{4096};
  std::uint64_t offset_{0};
  std::shared_ptr<memory::MemoryPool> pool_;
  observe::MetricsRegistry::Registration pool_metrics_;  // pool_ in the metrics
};

class TcpSink final : public SinkElement {
 public:
  Result<void> start() override {
    return ep_.open(*this, prop_enum("mode") == kModeServer, prop<std::string>("host"),
                    prop<std::int64_t>("port"));
  }
  Result<void> stop() override {
    ep_.close();
    return ok();
  }
  void unlock() override { ep_.wake(); }

  bool handle_event(Pad& pad, const Event& ev) override {
    if (ev.type == EventType::eos) {
      // Connect even for an empty stream, so the peer sees a clean end (EOF) rather than nothing.
      if (ep_.ensure_connected() == FlowReturn::ok) ::shutdown(ep_.fd(), SHUT_WR);
    }
    return SinkElement::handle_event(pad, ev);
  }

 protected:
  FlowReturn render(const Buffer& buf) override {
    if (FlowReturn fr = ep_.ensure_connected(); fr != FlowReturn::ok) return fr;
    auto bytes = buf.data();
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(ep_.fd(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return ep_.fail("could not send to " + ep_.where());
      if (Wait w = ep_.wait(ep_.fd(), POLLOUT); w != Wait::ready) return ep_.woken(w);
    }
    return FlowReturn::ok;
  }
  PropertyValue read_property(const PropertySpec& spec,
                              const PropertyValue& stored) const override {
    if (spec.name == "bound-port") return ep_.bound_port();
    return stored;
  }

 private:
  TcpEndpoint ep_;
};

const ElementRegistrar reg_tcpsrc{
    ElementInfo{"tcpsrc", "Source/Network", "Receives a byte stream over TCP (client or server)",
                [] { return std::make_unique<TcpSrc>(); }, tcp_properties(true)}};

const ElementRegistrar reg_tcpsink{
    ElementInfo{"tcpsink", "Sink/Network", "Sends every buffer over TCP (client or server)",
                [] { return std::make_unique<TcpSink>(); }, tcp_properties(false)}};

}  // namespace
}  // namespace parallax::elements
