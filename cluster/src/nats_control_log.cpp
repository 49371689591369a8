#include "subjects.hpp"

#include <aether/cluster/nats_control_log.hpp>
#include <aether/runtime/log.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace aether {

struct nats_control_log::impl {
  std::shared_ptr<nats::connection> conn;
  nats_control_options options;
  std::string stream;
  std::string prefix;

  struct pending {
    std::string subject;
    std::string data;
    append_done done;
  };
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<pending> queue;
  bool stopping = false;
  std::thread worker;

  void run() {
    static constexpr nats::header expect_empty[] = {{"Nats-Expected-Last-Subject-Sequence", "0"}};
    for (;;) {
      pending p;
      {
        std::unique_lock lock{mutex};
        wake.wait(lock, [this] { return stopping || !queue.empty(); });
        if (queue.empty()) return;
        p = std::move(queue.front());
        queue.pop_front();
      }
      if (stopping) {
        p.done(error{errc::shutting_down, "the control log is closing"});
        continue;
      }
      auto r = conn->stream_publish(prefix + p.subject, p.data, expect_empty);
      p.done(std::move(r));
    }
  }
};

namespace {

/// A follow on the ordered consumer: reports being caught up once the
/// consumer says nothing is pending, or at once when the stream was empty.
class nats_follow final : public control_log_follow {
public:
  struct state {
    std::mutex mutex;
    control_log_follower f;
    std::string prefix;
    bool caught_up = false;
    bool saw_end = false;
    bool closing = false;

    void caught_up_once() {
      // Under `mutex`.
      if (caught_up) return;
      caught_up = true;
      if (f.on_caught_up) f.on_caught_up();
    }
  };

  nats_follow(std::shared_ptr<state> s, nats::subscription sub) : state_{std::move(s)}, sub_{std::move(sub)} {}
  ~nats_follow() override {
    {
      std::lock_guard lock{state_->mutex};
      state_->closing = true;
    }
    sub_.unsubscribe();
  }
  nats_follow(const nats_follow&) = delete;
  nats_follow& operator=(const nats_follow&) = delete;

private:
  std::shared_ptr<state> state_;
  nats::subscription sub_;
};

} // namespace

nats_control_log::nats_control_log(std::unique_ptr<impl> p) noexcept : impl_{std::move(p)} {}

expected<std::shared_ptr<nats_control_log>> nats_control_log::open(std::shared_ptr<nats::connection> conn,
                                                                   nats_control_options options) {
  auto p = std::make_unique<impl>();
  p->stream = cluster_subjects::stream(options.cluster);
  p->prefix = cluster_subjects::control_prefix(options.cluster);
  nats::stream_config sc;
  sc.name = p->stream;
  sc.subjects = {cluster_subjects::control_all(options.cluster)};
  sc.replicas = options.replicas;
  sc.max_messages = options.max_messages;
  if (options.create) {
    if (auto r = conn->ensure_stream(sc); !r) return r.error();
  } else if (auto count = conn->stream_message_count(p->stream); !count) {
    return count.error();
  }
  p->conn = std::move(conn);
  p->options = std::move(options);
  auto* raw = p.get();
  p->worker = std::thread{[raw] { raw->run(); }};
  return std::shared_ptr<nats_control_log>{new nats_control_log{std::move(p)}};
}

nats_control_log::~nats_control_log() {
  {
    std::lock_guard lock{impl_->mutex};
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  impl_->worker.join();
}

const std::string& nats_control_log::stream() const noexcept { return impl_->stream; }

void nats_control_log::append(std::string subject, std::string data, append_done done) {
  {
    std::lock_guard lock{impl_->mutex};
    if (!impl_->stopping) {
      impl_->queue.push_back(impl::pending{std::move(subject), std::move(data), std::move(done)});
      impl_->wake.notify_one();
      return;
    }
  }
  done(error{errc::shutting_down, "the control log is closing"});
}

expected<std::unique_ptr<control_log_follow>> nats_control_log::follow(control_log_follower f) {
  auto st = std::make_shared<nats_follow::state>();
  st->f = std::move(f);
  st->prefix = impl_->prefix;
  auto sub = impl_->conn->follow(
      impl_->stream, cluster_subjects::control_all(impl_->options.cluster),
      [st](const nats::message_view& m) {
        std::lock_guard lock{st->mutex};
        if (st->closing) return;
        auto meta = m.sequence_and_pending();
        if (!meta) {
          log(log_level::warn, "control log: a message without metadata: {}", meta.error().to_string());
          return;
        }
        auto subject = m.subject();
        if (subject.substr(0, st->prefix.size()) != st->prefix) return;
        subject.remove_prefix(st->prefix.size());
        st->f.on_record(control_record{meta->first, std::string{subject}, std::string{m.data()}});
        if (meta->second == 0) {
          st->saw_end = true;
          st->caught_up_once();
        }
      },
      [st] {
        std::lock_guard lock{st->mutex};
        if (st->closing) return;
        st->closing = true;
        if (st->f.on_error) st->f.on_error(error{errc::unavailable, "the control log's consumer closed"});
      });
  if (!sub) return sub.error();
  // An empty stream delivers nothing: then following began caught up.
  auto count = impl_->conn->stream_message_count(impl_->stream);
  if (!count) return count.error();
  {
    std::lock_guard lock{st->mutex};
    if (*count == 0) st->caught_up_once();
  }
  return std::unique_ptr<control_log_follow>{new nats_follow{st, std::move(*sub)}};
}

} // namespace aether
