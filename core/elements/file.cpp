// SPDX-License-Identifier: MIT OR Apache-2.0
// filesrc and filesink: read a file in blocks into pool buffers; write buffers to a file.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common.h"
#include "parallax/unique_fd.h"

namespace parallax::elements {
namespace {

using namespace parallax::pipeline;

class FileSrc final : public SourceElement {
 public:
  Result<void> start() override {
    location_ = prop<std::string>("location");
    blocksize_ = prop<std::uint64_t>("blocksize");
    if (location_.empty()) return err(Errc::invalid_argument, "no file to read: set 'location'");
    int fd = ::open(location_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Error::from_errno("could not open '" + location_ + "' for reading");
    fd_.reset(fd);
    PLX_ASSIGN(pool_, make_heap_pool(blocksize_, 16));
    pool_metrics_ = pool_metrics(*this, pool_);
    offset_ = 0;
    return ok();
  }
  Result<void> stop() override {
    fd_.reset();
    pool_metrics_.reset();
    pool_.reset();
    return ok();
  }

 protected:
  FlowReturn create(Buffer& out) override {
    memory::Loan loan;
    if (FlowReturn fr = loan_slot(*this, *pool_, loan); fr != FlowReturn::ok) return fr;
    (void)loan.set_size(blocksize_);
    auto bytes = loan.data();
    ssize_t n;
    do {
      n = ::read(fd_.get(), bytes.data(), bytes.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      post_error(errc_from_errno(errno),
                 Error::from_errno("could not read '" + location_ + "'").message);
      return FlowReturn::error;
    }
    if (n == 0) return FlowReturn::eos;
    (void)loan.set_size(static_cast<std::size_t>(n));
    Metadata& m = loan.metadata();
    m.offset = offset_;
    m.offset_end = offset_ + static_cast<std::uint64_t>(n);
    offset_ += static_cast<std::uint64_t>(n);
    out = std::move(loan).freeze();
    return FlowReturn::ok;
  }

 private:
  std::string location_;
  std::uint64_t blocksize_{4096};
  std::uint64_t offset_{0};
  UniqueFd fd_;
  std::shared_ptr<memory::MemoryPool> pool_;
  observe::MetricsRegistry::Registration pool_metrics_;  // pool_ in the metrics
};

class FileSink final : public SinkElement {
 public:
  Result<void> start() override {
    location_ = prop<std::string>("location");
    if (location_.empty()) return err(Errc::invalid_argument, "no file to write: set 'location'");
    const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (prop<bool>("append") ? O_APPEND : O_TRUNC);
    int fd = ::open(location_.c_str(), flags, 0644);
    if (fd < 0) return Error::from_errno("could not open '" + location_ + "' for writing");
    fd_.reset(fd);
    return ok();
  }
  Result<void> stop() override {
    fd_.reset();
    return ok();
  }

 protected:
  FlowReturn render(const Buffer& buf) override {
    auto bytes = buf.data();
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd_.get(), bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        post_error(errc_from_errno(errno),
                   Error::from_errno("could not write '" + location_ + "'").message);
        return FlowReturn::error;
      }
      done += static_cast<std::size_t>(n);
    }
    return FlowReturn::ok;
  }

 private:
  std::string location_;
  UniqueFd fd_;
};

const ElementRegistrar reg_filesrc{
    ElementInfo{"filesrc",
                "Source/File",
                "Reads a file in blocks",
                [] { return std::make_unique<FileSrc>(); },
                {PropertySpec::string("location", "", "Path of the file to read"),
                 PropertySpec::uint64("blocksize", 4096, 1, 64u << 20, "Bytes per buffer"),
                 affinity_property()}}};

const ElementRegistrar reg_filesink{
    ElementInfo{"filesink",
                "Sink/File",
                "Writes every buffer to a file",
                [] { return std::make_unique<FileSink>(); },
                {PropertySpec::string("location", "", "Path of the file to write"),
                 PropertySpec::boolean("append", false, "Append instead of truncating")}}};

}  // namespace
}  // namespace parallax::elements
