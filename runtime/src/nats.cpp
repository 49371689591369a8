#include <aether/runtime/nats.hpp>

#include <aether/runtime/log.hpp>

#include "nkey.hpp"

#include <nats/nats.h>
#include <simdjson.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace aether::nats {

namespace {

constexpr jsErrCode wrong_last_sequence = static_cast<jsErrCode>(10071);
constexpr jsErrCode stream_not_found = static_cast<jsErrCode>(10059);
constexpr jsErrCode no_message_found = static_cast<jsErrCode>(10037);
constexpr jsErrCode stream_name_in_use = static_cast<jsErrCode>(10058);
constexpr jsErrCode consumer_not_found = static_cast<jsErrCode>(10014);
constexpr jsErrCode temporarily_unavailable = static_cast<jsErrCode>(10008);

/// The one adapter from nats.c statuses to Aether errors.
error to_error(natsStatus s, std::string_view what, jsErrCode js_code = static_cast<jsErrCode>(0)) {
  // nats.c keeps a thread's last error text until the next error, and some
  // failures (a message not found) set none: a text recorded with another
  // status belongs to an earlier failure and must not decide this one.
  natsStatus last_status = NATS_OK;
  const char* last = nats_GetLastError(&last_status);
  if (last_status != s) last = nullptr;
  std::string detail = fmt::format("{}: {}", what, natsStatus_GetText(s));
  if (last != nullptr && *last != '\0') detail = fmt::format("{} ({})", detail, last);
  // nats.c 3.4.1's js_PublishMsg reports a refused expected sequence with
  // its text but without the error code: both mean a version conflict.
  if (js_code == wrong_last_sequence ||
      (js_code == 0 && last != nullptr && std::string_view{last}.find("wrong last sequence") != std::string_view::npos))
    return error{errc::version_conflict, std::move(detail)};
  if (js_code == stream_not_found || js_code == no_message_found || js_code == consumer_not_found)
    return error{errc::not_found, std::move(detail)};
  // Right after a leader change the JetStream API answers "JetStream system
  // temporarily unavailable" (10008): asking again later may succeed.
  if (js_code == temporarily_unavailable ||
      (js_code == 0 && last != nullptr &&
       std::string_view{last}.find("temporarily unavailable") != std::string_view::npos))
    return error{errc::unavailable, std::move(detail)};
  switch (s) {
  case NATS_NOT_FOUND:
    return error{errc::not_found, std::move(detail)};
  case NATS_MAX_PAYLOAD:
    return error{errc::payload_too_large, std::move(detail)};
  case NATS_INVALID_ARG:
  case NATS_INVALID_SUBJECT:
    return error{errc::invalid_argument, std::move(detail)};
  case NATS_CONNECTION_AUTH_FAILED:
  case NATS_SECURE_CONNECTION_REQUIRED:
  case NATS_SSL_ERROR:
    return error{errc::unauthorized, std::move(detail)};
  case NATS_NOT_PERMITTED:
    return error{errc::permission_denied, std::move(detail)};
  case NATS_TIMEOUT:
  case NATS_NO_SERVER:
  case NATS_CONNECTION_CLOSED:
  case NATS_CONNECTION_DISCONNECTED:
  case NATS_STALE_CONNECTION:
  case NATS_NOT_YET_CONNECTED:
  case NATS_NO_RESPONDERS:
  case NATS_IO_ERROR:
  case NATS_DRAINING:
    return error{errc::unavailable, std::move(detail)};
  default:
    return error{errc::io_error, std::move(detail)};
  }
}

expected<void> check(natsStatus s, std::string_view what, jsErrCode js_code = static_cast<jsErrCode>(0)) {
  if (s == NATS_OK) return {};
  return to_error(s, what, js_code);
}

/// nats.c wants NUL-terminated strings.
std::string z(std::string_view v) { return std::string{v}; }

struct msg_deleter {
  void operator()(natsMsg* m) const noexcept { natsMsg_Destroy(m); }
};
using msg_ptr = std::unique_ptr<natsMsg, msg_deleter>;

expected<msg_ptr> build(std::string_view subject, std::string_view reply, std::string_view data,
                        std::span<const header> headers) {
  natsMsg* raw = nullptr;
  const auto subj = z(subject);
  const auto rep = z(reply);
  if (auto r = check(natsMsg_Create(&raw, subj.c_str(), reply.empty() ? nullptr : rep.c_str(), data.data(),
                                    static_cast<int>(data.size())),
                     "creating a message");
      !r) {
    return r.error();
  }
  msg_ptr m{raw};
  for (const auto& h : headers) {
    if (auto r = check(natsMsgHeader_Add(m.get(), z(h.name).c_str(), z(h.value).c_str()), "setting a header"); !r) {
      return r.error();
    }
  }
  return m;
}

message copy_message(natsMsg* m) {
  message out;
  if (const char* s = natsMsg_GetSubject(m)) out.subject = s;
  if (const char* d = natsMsg_GetData(m)) out.data.assign(d, static_cast<std::size_t>(natsMsg_GetDataLength(m)));
  const char** keys = nullptr;
  int count = 0;
  if (natsMsgHeader_Keys(m, &keys, &count) == NATS_OK) {
    for (int i = 0; i < count; ++i) {
      const char** values = nullptr;
      int n = 0;
      if (natsMsgHeader_Values(m, keys[i], &values, &n) == NATS_OK) {
        for (int j = 0; j < n; ++j) out.headers.emplace_back(keys[i], values[j]);
        std::free(static_cast<void*>(values));
      }
    }
    std::free(static_cast<void*>(keys));
  }
  // A direct get answers with the stored subject and sequence in headers.
  if (auto subject = out.header("Nats-Subject")) out.subject = std::string{*subject};
  if (auto seq = out.header("Nats-Sequence")) {
    std::from_chars(seq->data(), seq->data() + seq->size(), out.sequence);
  } else {
    out.sequence = natsMsg_GetSequence(m);
  }
  return out;
}

} // namespace

// message_view

std::string_view message_view::subject() const noexcept {
  const char* s = natsMsg_GetSubject(static_cast<natsMsg*>(msg_));
  return s ? std::string_view{s} : std::string_view{};
}
std::string_view message_view::reply() const noexcept {
  const char* s = natsMsg_GetReply(static_cast<natsMsg*>(msg_));
  return s ? std::string_view{s} : std::string_view{};
}
std::string_view message_view::data() const noexcept {
  auto* m = static_cast<natsMsg*>(msg_);
  const char* d = natsMsg_GetData(m);
  return d ? std::string_view{d, static_cast<std::size_t>(natsMsg_GetDataLength(m))} : std::string_view{};
}
std::optional<std::string_view> message_view::header(std::string_view name) const {
  // Called per message on replays: no allocation for the NUL-terminated name.
  char key[128];
  if (name.size() >= sizeof key) return std::nullopt; // no header has such a name
  name.copy(key, name.size());
  key[name.size()] = '\0';
  const char* value = nullptr;
  if (natsMsgHeader_Get(static_cast<natsMsg*>(msg_), key, &value) != NATS_OK || value == nullptr) {
    return std::nullopt;
  }
  return std::string_view{value};
}
expected<delivery_position> message_view::delivery() const {
  jsMsgMetaData* meta = nullptr;
  if (auto r = check(natsMsg_GetMetaData(&meta, static_cast<natsMsg*>(msg_)), "reading message metadata"); !r) {
    return r.error();
  }
  const delivery_position out{meta->Sequence.Stream, meta->Sequence.Consumer, meta->NumPending};
  jsMsgMetaData_Destroy(meta);
  return out;
}

expected<std::pair<std::uint64_t, std::uint64_t>> message_view::sequence_and_pending() const {
  auto d = delivery();
  if (!d) return d.error();
  return std::pair{d->stream_sequence, d->pending};
}

std::optional<std::string_view> message::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return std::string_view{v};
  }
  return std::nullopt;
}

// subscription

struct subscription::state {
  std::mutex mutex;
  natsSubscription* sub = nullptr;
  bool closed = false;
  connection::handler on_message;
  std::function<void()> on_closed; // once nats.c will call nothing more

  static void deliver(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
    auto& st = **static_cast<std::shared_ptr<state>*>(closure);
    try {
      st.on_message(message_view{m});
    } catch (const std::exception& e) {
      log(log_level::error, "a NATS message handler threw: {}", e.what());
    }
    natsMsg_Destroy(m);
  }

  static void complete(void* closure) {
    auto* holder = static_cast<std::shared_ptr<state>*>(closure);
    std::function<void()> closed_cb;
    {
      std::lock_guard lock{(*holder)->mutex};
      (*holder)->closed = true;
      natsSubscription_Destroy((*holder)->sub);
      (*holder)->sub = nullptr;
      closed_cb = std::move((*holder)->on_closed);
    }
    if (closed_cb) closed_cb();
    delete holder;
  }
};

subscription::subscription(subscription&&) noexcept = default;
subscription& subscription::operator=(subscription&& o) noexcept {
  if (this != &o) {
    unsubscribe();
    state_ = std::move(o.state_);
  }
  return *this;
}
subscription::~subscription() { unsubscribe(); }

std::int64_t subscription::dropped() const noexcept {
  if (!state_) return 0;
  std::lock_guard lock{state_->mutex};
  std::int64_t n = 0;
  if (!state_->closed && state_->sub != nullptr) natsSubscription_GetDropped(state_->sub, &n);
  return n;
}

void subscription::unsubscribe() noexcept {
  if (!state_) return;
  // The callbacks' reference keeps the state alive until nats.c completes it.
  {
    std::lock_guard lock{state_->mutex};
    if (!state_->closed && state_->sub != nullptr) natsSubscription_Unsubscribe(state_->sub);
  }
  state_.reset();
}

// connection

namespace {

/// Asynchronous requests waiting for their reply, by the number that ends
/// their reply subject, and the thread that answers those whose deadline
/// passes. That thread holds the table too: a callback it runs may drop the
/// connection's last reference, and the table outlives the connection then.
struct async_table : std::enable_shared_from_this<async_table> {
  using clock = std::chrono::steady_clock;
  struct entry {
    std::string subject;
    clock::time_point deadline;
    connection::reply_callback done;
  };
  natsConnection* nc = nullptr; // read under `mutex` while `stopping` is false
  std::mutex mutex;
  std::condition_variable wake;
  std::unordered_map<std::uint64_t, entry> entries;
  std::set<std::pair<clock::time_point, std::uint64_t>> deadlines;
  bool closed = false;   // new requests are answered at once
  bool stopping = false; // the timer leaves
  std::thread timer;

  /// Adds a request; false (and `done` left as it was) once closed.
  bool add(std::uint64_t token, std::string_view subject, std::chrono::milliseconds timeout,
           connection::reply_callback& done) {
    std::lock_guard lock{mutex};
    if (closed) return false;
    const auto deadline = clock::now() + timeout;
    const bool earliest = deadlines.empty() || deadline < deadlines.begin()->first;
    entries.emplace(token, entry{std::string{subject}, deadline, std::move(done)});
    deadlines.emplace(deadline, token);
    if (!timer.joinable()) {
      timer = std::thread{[self = shared_from_this()] { self->run(); }};
    } else if (earliest) {
      wake.notify_all();
    }
    return true;
  }

  /// Takes the request out: only the one who takes it answers it.
  std::optional<entry> take(std::uint64_t token) {
    std::lock_guard lock{mutex};
    return take_locked(token);
  }

  std::optional<entry> take_locked(std::uint64_t token) {
    auto it = entries.find(token);
    if (it == entries.end()) return std::nullopt;
    std::optional<entry> out{std::move(it->second)};
    entries.erase(it);
    deadlines.erase({out->deadline, token});
    return out;
  }

  std::vector<entry> take_subject(std::string_view subject) {
    std::vector<entry> out;
    std::lock_guard lock{mutex};
    std::vector<std::uint64_t> tokens;
    for (const auto& [token, e] : entries) {
      if (e.subject == subject) tokens.push_back(token);
    }
    for (auto token : tokens) out.push_back(std::move(*take_locked(token)));
    return out;
  }

  /// Refuses new requests and takes every waiting one out.
  std::vector<entry> close(bool stop) {
    std::vector<entry> out;
    {
      std::lock_guard lock{mutex};
      closed = true;
      if (stop) stopping = true;
      for (auto& [token, e] : entries) out.push_back(std::move(e));
      entries.clear();
      deadlines.clear();
    }
    wake.notify_all();
    return out;
  }

  void run() {
    std::unique_lock lock{mutex};
    while (!stopping) {
      if (deadlines.empty()) {
        wake.wait(lock);
        continue;
      }
      const auto first = deadlines.begin()->first;
      if (clock::now() < first) {
        wake.wait_until(lock, first);
        continue;
      }
      std::vector<entry> expired;
      const auto now = clock::now();
      while (!deadlines.empty() && deadlines.begin()->first <= now) {
        expired.push_back(std::move(*take_locked(deadlines.begin()->second)));
      }
      const bool up = natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED;
      lock.unlock();
      for (auto& e : expired) {
        // With no server to ask the request never left: unavailable, not slow.
        e.done(up ? error{errc::timeout, fmt::format("requesting {}: no answer in time", e.subject)}
                  : error{errc::unavailable, fmt::format("requesting {}: not connected to a server", e.subject)});
      }
      expired.clear(); // the callbacks go before the lock is taken again
      lock.lock();
    }
  }
};

/// Answers each with `unavailable`: the connection closed.
void answer_closed(std::vector<async_table::entry>& list) {
  for (auto& e : list) {
    e.done(error{errc::unavailable, fmt::format("requesting {}: the connection closed", e.subject)});
  }
}

/// A base64 text (RFC 4648, padded or not) decoded; nullopt if it is not one.
std::optional<std::string> decode_base64(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3);
  std::uint32_t bits = 0;
  int count = 0;
  for (const char c : text) {
    int v = 0;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      break;
    } else {
      return std::nullopt;
    }
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    if (++count == 4) {
      out.push_back(static_cast<char>((bits >> 16) & 0xff));
      out.push_back(static_cast<char>((bits >> 8) & 0xff));
      out.push_back(static_cast<char>(bits & 0xff));
      bits = 0;
      count = 0;
    }
  }
  if (count == 1) return std::nullopt;
  if (count == 2) out.push_back(static_cast<char>((bits >> 4) & 0xff));
  if (count == 3) {
    out.push_back(static_cast<char>((bits >> 10) & 0xff));
    out.push_back(static_cast<char>((bits >> 2) & 0xff));
  }
  return out;
}

/// The headers of a `NATS/1.0` header block, added to `out`.
void parse_header_block(std::string_view block, message& out) {
  bool first = true;
  while (!block.empty()) {
    const auto end = block.find("\r\n");
    const auto line = block.substr(0, end);
    block = end == std::string_view::npos ? std::string_view{} : block.substr(end + 2);
    if (first) { // the status line
      first = false;
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    auto value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    out.headers.emplace_back(std::string{line.substr(0, colon)}, std::string{value});
  }
}

/// The message in a `$JS.API.STREAM.MSG.GET` answer: `not_found` when the
/// stream or the message is not there, other API errors as `to_error` maps
/// them.
expected<message> stream_msg_get_answer(std::string_view json, std::string_view what) {
  namespace od = simdjson::ondemand;
  const auto bad = [&](std::string_view why) {
    return error{errc::io_error, fmt::format("{}: the server's answer {}", what, why)};
  };
  thread_local od::parser parser;
  const simdjson::padded_string padded{json};
  od::document doc;
  if (parser.iterate(padded).get(doc)) return bad("is not JSON");
  od::object root;
  if (doc.get_object().get(root)) return bad("is not an object");
  message out;
  bool found = false;
  for (auto member : root) {
    od::field field;
    std::string_view key;
    if (std::move(member).get(field) || field.unescaped_key().get(key)) return bad("is not JSON");
    if (key == "error") {
      od::object e;
      if (field.value().get_object().get(e)) return bad("has an error that is not an object");
      std::uint64_t code = 0;
      std::uint64_t err_code = 0;
      std::string description;
      for (auto em : e) {
        od::field ef;
        std::string_view ek;
        if (std::move(em).get(ef) || ef.unescaped_key().get(ek)) return bad("is not JSON");
        if (ek == "code") {
          if (ef.value().get_uint64().get(code)) return bad("has a code that is not a number");
        } else if (ek == "err_code") {
          if (ef.value().get_uint64().get(err_code)) return bad("has an err_code that is not a number");
        } else if (ek == "description") {
          std::string_view d;
          if (ef.value().get_string().get(d)) return bad("has a description that is not text");
          description = std::string{d};
        }
      }
      const auto detail = fmt::format("{}: {} (code {}, error {})", what, description, code, err_code);
      const auto js = static_cast<jsErrCode>(err_code);
      if (js == no_message_found || js == stream_not_found || (err_code == 0 && code == 404)) {
        return error{errc::not_found, detail};
      }
      if (js == temporarily_unavailable || code == 503) return error{errc::unavailable, detail};
      return error{errc::io_error, detail};
    }
    if (key == "message") {
      od::object m;
      if (field.value().get_object().get(m)) return bad("has a message that is not an object");
      for (auto mm : m) {
        od::field mf;
        std::string_view mk;
        if (std::move(mm).get(mf) || mf.unescaped_key().get(mk)) return bad("is not JSON");
        if (mk == "subject") {
          std::string_view v;
          if (mf.value().get_string().get(v)) return bad("has a subject that is not text");
          out.subject = std::string{v};
        } else if (mk == "seq") {
          if (mf.value().get_uint64().get(out.sequence)) return bad("has a sequence that is not a number");
        } else if (mk == "hdrs" || mk == "data") {
          std::string_view v;
          if (mf.value().get_string().get(v)) return bad("has a field that is not text");
          auto decoded = decode_base64(v);
          if (!decoded) return bad("has a field that is not base64");
          if (mk == "data") {
            out.data = std::move(*decoded);
          } else {
            parse_header_block(*decoded, out);
          }
        }
      }
      found = true;
    }
  }
  if (!found) return bad("holds no message");
  return out;
}

} // namespace

struct connection::impl {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::atomic<std::uint64_t> slow_consumers{0};
  std::mutex closed_mutex;
  std::condition_variable closed_cv;
  bool closed = false;

  // Requests waiting for their answer, by the number that ends their reply
  // subject; one wildcard subscription takes every answer. The server
  // reports a subject the user may not publish to only to the error handler,
  // which ends the requests on that subject at once (nats.c's own request
  // would wait for its timeout).
  struct pending_request {
    std::string_view subject;
    natsMsg* answer = nullptr;
    bool no_responders = false;
    std::string denied; // the server's words
  };
  std::mutex requests_mutex;
  std::condition_variable requests_cv;
  std::unordered_map<std::uint64_t, pending_request*> requests;
  std::uint64_t next_request = 0;
  std::string reply_prefix;
  natsSubscription* reply_sub = nullptr;
  std::deque<std::string> violations; // the last refusals, in the server's words
  std::shared_ptr<async_table> async = std::make_shared<async_table>();

  static void on_reply(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
    auto* self = static_cast<impl*>(closure);
    const std::string_view subject{natsMsg_GetSubject(m)};
    std::unique_lock lock{self->requests_mutex};
    std::uint64_t token = 0;
    const auto prefix = self->reply_prefix.size();
    const bool parsed =
        subject.size() > prefix &&
        std::from_chars(subject.data() + prefix, subject.data() + subject.size(), token).ec == std::errc{};
    const auto it = parsed ? self->requests.find(token) : self->requests.end();
    if (it == self->requests.end()) {
      lock.unlock();
      // An asynchronous request's reply, unless its deadline came first.
      if (auto e = parsed ? self->async->take(token) : std::nullopt) {
        answer_async(*e, m);
      } else {
        natsMsg_Destroy(m);
      }
      return;
    }
    if (it->second->answer != nullptr || it->second->no_responders) {
      natsMsg_Destroy(m);
      return;
    }
    const char* status = nullptr;
    if (natsMsg_GetDataLength(m) == 0 && natsMsgHeader_Get(m, "Status", &status) == NATS_OK && status != nullptr &&
        std::string_view{status} == "503") {
      it->second->no_responders = true;
      natsMsg_Destroy(m);
    } else {
      it->second->answer = m;
    }
    self->requests_cv.notify_all();
  }

  /// Answers an asynchronous request with its reply `m` (and frees it).
  static void answer_async(async_table::entry& e, natsMsg* m) {
    msg_ptr owned{m};
    const char* status = nullptr;
    if (natsMsg_GetDataLength(m) == 0 && natsMsgHeader_Get(m, "Status", &status) == NATS_OK && status != nullptr &&
        std::string_view{status} == "503") {
      e.done(error{errc::not_found, fmt::format("requesting {}: no responders", e.subject)});
      return;
    }
    auto copy = copy_message(m);
    owned.reset();
    e.done(std::move(copy));
  }

  /// A token and reply subject for a request; `requests_mutex` held.
  natsStatus new_reply_locked(std::uint64_t& token, std::string& reply_to) {
    if (reply_sub == nullptr) {
      natsInbox* inbox = nullptr;
      if (const auto s = natsInbox_Create(&inbox); s != NATS_OK) return s;
      reply_prefix = fmt::format("{}.", inbox);
      natsInbox_Destroy(inbox);
      if (const auto s = natsConnection_Subscribe(&reply_sub, nc, (reply_prefix + "*").c_str(), &impl::on_reply, this);
          s != NATS_OK) {
        reply_sub = nullptr;
        return s;
      }
      natsSubscription_SetPendingLimits(reply_sub, -1, -1);
    }
    token = ++next_request;
    reply_to = fmt::format("{}{}", reply_prefix, token);
    return NATS_OK;
  }

  void request_async(std::string_view subject, std::string_view data, std::span<const header> headers,
                     std::chrono::milliseconds timeout, connection::reply_callback done) {
    std::uint64_t token = 0;
    std::string reply_to;
    natsStatus s = NATS_OK;
    {
      std::lock_guard lock{requests_mutex};
      s = new_reply_locked(token, reply_to);
    }
    if (s != NATS_OK) {
      done(to_error(s, fmt::format("requesting {}", subject)));
      return;
    }
    if (!async->add(token, subject, timeout, done)) {
      done(error{errc::unavailable, fmt::format("requesting {}: the connection closed", subject)});
      return;
    }
    auto m = build(subject, reply_to, data, headers);
    auto sent = m ? check(natsConnection_PublishMsg(nc, m->get()), fmt::format("requesting {}", subject))
                  : expected<void>{m.error()};
    if (!sent) {
      if (auto e = async->take(token)) e->done(sent.error());
    }
  }

  /// The subject in a permission violation (`Permissions Violation for
  /// Publish to "x"`) of `kind` (`Publish`, `Subscription`), or empty.
  static std::string_view violated_subject(std::string_view text, std::string_view kind) {
    const auto marker = fmt::format("{} to \"", kind);
    const auto start = text.find(marker);
    if (start == std::string_view::npos) return {};
    const auto from = start + marker.size();
    const auto end = text.find('"', from);
    return end == std::string_view::npos ? std::string_view{} : text.substr(from, end - from);
  }

  void permission_violation(std::string_view text) {
    const auto subject = violated_subject(text, "Publish");
    {
      std::lock_guard lock{requests_mutex};
      violations.emplace_back(text);
      if (violations.size() > 64) violations.pop_front();
      if (subject.empty()) return;
      for (auto& [token, r] : requests) {
        if (r->subject == subject && r->denied.empty()) r->denied = std::string{text};
      }
      requests_cv.notify_all();
    }
    for (auto& e : async->take_subject(subject)) {
      e.done(error{errc::permission_denied, fmt::format("requesting {}: {}", subject, text)});
    }
  }

  /// Sends a request and waits for its answer: NATS_OK with `*reply` set,
  /// NATS_TIMEOUT, NATS_NO_RESPONDERS, or NATS_NOT_PERMITTED with the
  /// server's words in `denied`.
  natsStatus request_msg(natsMsg** reply, std::string_view subject, std::string_view data,
                         std::span<const header> headers, std::chrono::milliseconds timeout, std::string& denied) {
    pending_request pending;
    pending.subject = subject;
    std::uint64_t token = 0;
    std::string reply_to;
    {
      std::lock_guard lock{requests_mutex};
      if (const auto s = new_reply_locked(token, reply_to); s != NATS_OK) return s;
      requests.emplace(token, &pending);
    }
    natsStatus s = NATS_OK;
    if (auto m = build(subject, reply_to, data, headers); !m) {
      s = NATS_INVALID_ARG;
    } else {
      s = natsConnection_PublishMsg(nc, m->get());
    }
    std::unique_lock lock{requests_mutex};
    if (s == NATS_OK) {
      requests_cv.wait_for(
          lock, timeout, [&] { return pending.answer != nullptr || pending.no_responders || !pending.denied.empty(); });
      if (pending.answer != nullptr) {
        *reply = pending.answer;
      } else if (!pending.denied.empty()) {
        denied = std::move(pending.denied);
        s = NATS_NOT_PERMITTED;
      } else {
        s = pending.no_responders ? NATS_NO_RESPONDERS : NATS_TIMEOUT;
      }
    }
    requests.erase(token);
    return s;
  }

  ~impl() {
    if (js) jsCtx_Destroy(js);
    // The timer stops before the connection goes; it cannot wait for itself
    // (a callback it ran dropped the last reference), and keeps the table.
    auto unanswered = async->close(true);
    if (async->timer.joinable()) {
      if (async->timer.get_id() == std::this_thread::get_id()) {
        async->timer.detach();
      } else {
        async->timer.join();
      }
    }
    answer_closed(unanswered);
    if (nc) {
      natsConnection_Close(nc);
      // nats.c calls back on its own thread, after Close returns; the closed
      // callback comes last. Wait for it before freeing what callbacks use.
      std::unique_lock lock{closed_mutex};
      closed_cv.wait_for(lock, std::chrono::seconds{10}, [this] { return closed; });
      lock.unlock();
      // Requests sent while it closed.
      auto late = async->close(true);
      answer_closed(late);
      if (reply_sub) natsSubscription_Destroy(reply_sub);
      natsConnection_Destroy(nc);
    }
  }

  static void on_error(natsConnection*, natsSubscription*, natsStatus err, void* closure) {
    auto* self = static_cast<impl*>(closure);
    // The client hands this thread the error's own text (its last error),
    // copied when the error came: the connection's error buffer, which the
    // reader thread rewrites on the server's next error, is not read here.
    natsStatus status = NATS_OK;
    const char* text = nats_GetLastError(&status);
    if (err == NATS_SLOW_CONSUMER) {
      self->slow_consumers.fetch_add(1, std::memory_order_relaxed);
      log(log_level::warn, "a NATS subscriber fell behind and the client dropped messages");
    } else if (err == NATS_NOT_PERMITTED && status == NATS_NOT_PERMITTED && text != nullptr && *text != '\0') {
      // The server's words name the subject the user may not use (no secret).
      log(log_level::warn, "NATS: {}", text);
      self->permission_violation(text);
    } else {
      log(log_level::warn, "NATS: {}", natsStatus_GetText(err));
    }
  }
  static void on_disconnected(natsConnection* nc, void*) {
    if (natsConnection_IsClosed(nc)) return; // closing: nothing to report
    log(log_level::warn, "NATS: disconnected, reconnecting");
  }
  static void on_reconnected(natsConnection*, void*) { log(log_level::info, "NATS: reconnected"); }
  static void on_closed(natsConnection*, void* closure) {
    auto* self = static_cast<impl*>(closure);
    auto unanswered = self->async->close(false);
    answer_closed(unanswered);
    std::lock_guard lock{self->closed_mutex};
    self->closed = true;
    self->closed_cv.notify_all();
  }

  expected<subscription> make_subscription(const std::function<natsStatus(natsSubscription**, void*)>& create,
                                           connection::handler h, std::function<void()> on_closed,
                                           std::string_view what, const jsErrCode* js_code = nullptr) {
    auto st = std::make_shared<subscription::state>();
    st->on_message = std::move(h);
    st->on_closed = std::move(on_closed);
    // The callbacks' reference, released when nats.c completes the subscription.
    auto* holder = new std::shared_ptr<subscription::state>(st);
    natsSubscription* sub = nullptr;
    {
      // Hold the lock so a fast first message cannot see `sub` unset.
      std::lock_guard lock{st->mutex};
      const auto status = create(&sub, holder);
      if (auto r = check(status, what, js_code ? *js_code : static_cast<jsErrCode>(0)); !r) {
        delete holder;
        return r.error();
      }
      st->sub = sub;
      natsSubscription_SetOnCompleteCB(sub, &subscription::state::complete, holder);
    }
    subscription out;
    out.state_ = std::move(st);
    return out;
  }
};

std::string redact_url(std::string_view url) {
  std::string out;
  for (std::size_t start = 0; start <= url.size();) {
    auto end = url.find(',', start);
    if (end == std::string_view::npos) end = url.size();
    auto one = url.substr(start, end - start);
    const auto scheme = one.find("://");
    const auto host = scheme == std::string_view::npos ? 0 : scheme + 3;
    const auto at = one.rfind('@');
    if (at != std::string_view::npos && at >= host) {
      out += one.substr(0, host);
      out += "***@";
      out += one.substr(at + 1);
    } else {
      out += one;
    }
    if (end < url.size()) out += ',';
    start = end + 1;
  }
  return out;
}

namespace {

/// A variable's value, or empty.
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string{} : std::string{v};
}

} // namespace

expected<security_options> security_options::from_env() {
  security_options o;
  o.credentials_file = env("AETHER_NATS_CREDS");
  o.nkey_seed_file = env("AETHER_NATS_NKEY_SEED");
  o.token = env("AETHER_NATS_TOKEN");
  o.user = env("AETHER_NATS_USER");
  o.password = env("AETHER_NATS_PASSWORD");
  o.tls_ca_file = env("AETHER_NATS_TLS_CA");
  o.tls_cert_file = env("AETHER_NATS_TLS_CERT");
  o.tls_key_file = env("AETHER_NATS_TLS_KEY");
  if (auto r = o.validate(); !r) {
    return error{errc::invalid_argument, fmt::format("AETHER_NATS_* variables: {}", r.error().detail())};
  }
  return o;
}

expected<void> security_options::validate() const {
  const int ways = static_cast<int>(!credentials_file.empty()) + static_cast<int>(!nkey_seed_file.empty()) +
                   static_cast<int>(!token.empty()) + static_cast<int>(!user.empty());
  if (ways > 1) {
    return error{errc::invalid_argument,
                 "set one of credentials file (AETHER_NATS_CREDS), NKey seed (AETHER_NATS_NKEY_SEED), token "
                 "(AETHER_NATS_TOKEN) and user (AETHER_NATS_USER)"};
  }
  if (!password.empty() && user.empty()) {
    return error{errc::invalid_argument, "a password (AETHER_NATS_PASSWORD) needs a user (AETHER_NATS_USER)"};
  }
  if (tls_cert_file.empty() != tls_key_file.empty()) {
    return error{errc::invalid_argument,
                 "a TLS client certificate (AETHER_NATS_TLS_CERT) needs its key (AETHER_NATS_TLS_KEY) and the "
                 "other way round"};
  }
  return {};
}

namespace {

/// Hands credentials and TLS settings to nats.c. Messages name files and
/// what failed, never a secret.
expected<void> apply_security(natsOptions* opts, const security_options& o, bool tls_url) {
  if (auto r = o.validate(); !r) return r;
  if (!o.credentials_file.empty()) {
    if (auto r = check(natsOptions_SetUserCredentialsFromFiles(opts, o.credentials_file.c_str(), nullptr),
                       fmt::format("using the credentials file {}", o.credentials_file));
        !r) {
      return r;
    }
  }
  if (!o.nkey_seed_file.empty()) {
    auto seed = read_nkey_seed_file(o.nkey_seed_file);
    if (!seed) return seed.error();
    auto pub = nkey_public_key(*seed);
    std::fill(seed->begin(), seed->end(), '\0');
    if (!pub) return error{errc::invalid_argument, fmt::format("{}: {}", o.nkey_seed_file, pub.error().detail())};
    if (auto r = check(natsOptions_SetNKeyFromSeed(opts, pub->c_str(), o.nkey_seed_file.c_str()),
                       fmt::format("using the NKey seed file {}", o.nkey_seed_file));
        !r) {
      return r;
    }
  }
  if (!o.token.empty()) {
    if (auto r = check(natsOptions_SetToken(opts, o.token.c_str()), "setting the token"); !r) return r;
  }
  if (!o.user.empty()) {
    if (auto r = check(natsOptions_SetUserInfo(opts, o.user.c_str(), o.password.c_str()), "setting user and password");
        !r) {
      return r;
    }
  }
  if (o.tls() || tls_url) {
    if (auto r = check(natsOptions_SetSecure(opts, true), "turning TLS on"); !r) return r;
  }
  if (!o.tls_ca_file.empty()) {
    if (auto r = check(natsOptions_LoadCATrustedCertificates(opts, o.tls_ca_file.c_str()),
                       fmt::format("loading the TLS CA file {}", o.tls_ca_file));
        !r) {
      return r;
    }
  }
  if (!o.tls_cert_file.empty()) {
    if (auto r = check(natsOptions_LoadCertificatesChain(opts, o.tls_cert_file.c_str(), o.tls_key_file.c_str()),
                       fmt::format("loading the TLS certificate {} and key {}", o.tls_cert_file, o.tls_key_file));
        !r) {
      return r;
    }
  }
  return {};
}

} // namespace

connection::connection(std::unique_ptr<impl> p) noexcept : impl_{std::move(p)} {}
connection::~connection() = default;

expected<std::shared_ptr<connection>> connection::connect(const connect_options& o) {
  natsOptions* opts = nullptr;
  if (auto r = check(natsOptions_Create(&opts), "creating options"); !r) return r.error();
  std::unique_ptr<natsOptions, void (*)(natsOptions*)> guard{opts, natsOptions_Destroy};
  auto p = std::make_unique<impl>();
  // A comma-separated list is given to nats.c as a server list: its
  // natsOptions_SetURL takes one URL only ("a,b" never connected).
  std::vector<std::string> urls;
  for (std::size_t start = 0; start <= o.url.size();) {
    auto end = o.url.find(',', start);
    if (end == std::string::npos) end = o.url.size();
    auto one = o.url.substr(start, end - start);
    const auto first = one.find_first_not_of(" \t");
    const auto last = one.find_last_not_of(" \t");
    if (first != std::string::npos) urls.push_back(one.substr(first, last - first + 1));
    start = end + 1;
  }
  std::vector<const char*> servers;
  for (const auto& u : urls) servers.push_back(u.c_str());
  const auto name = z(o.name);
  natsStatus s = servers.size() > 1 ? natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size()))
                                    : natsOptions_SetURL(opts, servers.empty() ? "" : servers.front());
  if (s == NATS_OK) s = natsOptions_SetName(opts, name.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, o.connect_timeout.count());
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, o.max_reconnects);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, o.reconnect_wait.count());
  if (s == NATS_OK) s = natsOptions_SetErrorHandler(opts, &impl::on_error, p.get());
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, &impl::on_disconnected, p.get());
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, &impl::on_reconnected, p.get());
  if (s == NATS_OK) s = natsOptions_SetClosedCB(opts, &impl::on_closed, p.get());
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, o.send_asap);
  if (auto r = check(s, "setting options"); !r) return r.error();
  bool tls_url = false;
  for (const auto& u : urls) tls_url = tls_url || u.starts_with("tls://");
  if (auto r = apply_security(opts, o.security, tls_url); !r) return r.error();
  if (const auto status = natsConnection_Connect(&p->nc, opts); status != NATS_OK) {
    auto e = to_error(status, fmt::format("connecting to {}", redact_url(o.url)));
    // With TLS 1.3 a server that refuses the client's certificate (or its
    // absence) closes the connection after the handshake: nats.c then reads
    // nothing where it expects the server's PONG.
    if (status == NATS_PROTOCOL_ERROR && (o.security.tls() || tls_url)) {
      return error{
          errc::unauthorized,
          fmt::format("{}; the server closed the TLS connection (does it want a client certificate?)", e.detail())};
    }
    return e;
  }
  {
    std::lock_guard lock{p->async->mutex};
    p->async->nc = p->nc;
  }
  jsOptions js_opts;
  jsOptions_Init(&js_opts);
  js_opts.Wait = 5'000;
  if (auto r = check(natsConnection_JetStream(&p->js, p->nc, &js_opts), "opening JetStream"); !r) return r.error();
  return std::shared_ptr<connection>{new connection{std::move(p)}};
}

bool connection::connected() const noexcept { return natsConnection_Status(impl_->nc) == NATS_CONN_STATUS_CONNECTED; }

connection::traffic connection::counts() const noexcept {
  traffic t;
  natsStatistics* stats = nullptr;
  if (natsStatistics_Create(&stats) != NATS_OK) return t;
  if (natsConnection_GetStats(impl_->nc, stats) == NATS_OK) {
    natsStatistics_GetCounts(stats, &t.in_messages, &t.in_bytes, &t.out_messages, &t.out_bytes, &t.reconnects);
  }
  natsStatistics_Destroy(stats);
  return t;
}

std::uint64_t connection::slow_consumer_events() const noexcept {
  return impl_->slow_consumers.load(std::memory_order_relaxed);
}

std::int64_t connection::max_payload() const noexcept { return natsConnection_GetMaxPayload(impl_->nc); }

expected<std::string> connection::server_version() const {
  char url[256] = {};
  if (natsConnection_GetConnectedUrl(impl_->nc, url, sizeof url) != NATS_OK || url[0] == '\0') {
    return error{errc::unavailable, "reading the server version: not connected"};
  }
  std::string_view rest{url};
  if (const auto scheme = rest.find("://"); scheme != std::string_view::npos) rest.remove_prefix(scheme + 3);
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos)
    return error{errc::unavailable, fmt::format("reading the server version of {}", redact_url(url))};
  auto host = std::string{rest.substr(0, colon)};
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const auto port = std::string{rest.substr(colon + 1)};
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
    return error{errc::unavailable, fmt::format("reading the server version: cannot resolve {}", redact_url(url))};
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> addresses{found, freeaddrinfo};
  const int fd = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  if (fd < 0) return error{errc::unavailable, "reading the server version: no socket"};
  std::unique_ptr<int, void (*)(int*)> closer{new int{fd}, [](int* f) {
                                                ::close(*f);
                                                delete f;
                                              }};
  timeval wait{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait);
  if (::connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
    return error{errc::unavailable, fmt::format("reading the server version: cannot connect to {}", redact_url(url))};
  }
  // The server sends `INFO {json}\r\n` first, before TLS and before auth.
  std::string line;
  char buffer[1024];
  while (line.find("\r\n") == std::string::npos && line.size() < 16 * 1024) {
    const auto n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    line.append(buffer, static_cast<std::size_t>(n));
  }
  constexpr std::string_view key = "\"version\":\"";
  const auto start = line.find(key);
  const auto end = start == std::string::npos ? start : line.find('"', start + key.size());
  if (!line.starts_with("INFO") || end == std::string::npos) {
    return error{errc::unavailable, fmt::format("reading the server version: no INFO from {}", redact_url(url))};
  }
  return line.substr(start + key.size(), end - start - key.size());
}

std::string connection::new_inbox() const {
  natsInbox* inbox = nullptr;
  if (natsInbox_Create(&inbox) != NATS_OK) return {};
  std::string out{inbox};
  natsInbox_Destroy(inbox);
  return out;
}

expected<void> connection::publish(std::string_view subject, std::string_view data, std::span<const header> headers,
                                   std::string_view reply) {
  if (headers.empty()) {
    const auto subj = z(subject);
    const auto rep = z(reply);
    const auto status =
        reply.empty() ? natsConnection_Publish(impl_->nc, subj.c_str(), data.data(), static_cast<int>(data.size()))
                      : natsConnection_PublishRequest(impl_->nc, subj.c_str(), rep.c_str(), data.data(),
                                                      static_cast<int>(data.size()));
    return check(status, "publishing");
  }
  auto m = build(subject, reply, data, headers);
  if (!m) return m.error();
  return check(natsConnection_PublishMsg(impl_->nc, m->get()), "publishing");
}

expected<message> connection::request(std::string_view subject, std::string_view data,
                                      std::chrono::milliseconds timeout, std::span<const header> headers) {
  natsMsg* reply = nullptr;
  std::string denied;
  const auto s = impl_->request_msg(&reply, subject, data, headers, timeout, denied);
  if (s == NATS_NOT_PERMITTED) return error{errc::permission_denied, fmt::format("requesting {}: {}", subject, denied)};
  // The server says at once that nobody listens: not a lost answer.
  if (s == NATS_NO_RESPONDERS) return error{errc::not_found, fmt::format("requesting {}: no responders", subject)};
  if (s == NATS_TIMEOUT) {
    // With no server to ask (the connection lost and reconnecting), the
    // request never left: the server is unavailable, not slow to answer.
    if (!connected()) return error{errc::unavailable, fmt::format("requesting {}: not connected to a server", subject)};
    return error{errc::timeout, fmt::format("requesting {}: no answer in time", subject)};
  }
  if (auto r = check(s, "requesting"); !r) return r.error();
  msg_ptr owned{reply};
  return copy_message(reply);
}

void connection::request_async(std::string_view subject, std::string_view data, std::chrono::milliseconds timeout,
                               reply_callback done, std::span<const header> headers) {
  impl_->request_async(subject, data, headers, timeout, std::move(done));
}

std::size_t connection::async_requests_pending() const {
  std::lock_guard lock{impl_->async->mutex};
  return impl_->async->entries.size();
}

void connection::leader_get_last_async(std::string_view stream, std::string_view subject,
                                       std::chrono::milliseconds timeout, reply_callback done) {
  request_async(fmt::format("$JS.API.STREAM.MSG.GET.{}", stream), fmt::format(R"({{"last_by_subj":"{}"}})", subject),
                timeout,
                [done = std::move(done),
                 what = fmt::format("reading the last message on {}", subject)](expected<message> answer) {
                  if (!answer) {
                    // Nobody answering the API is no answer about the message.
                    done(answer.error().code() == errc::not_found ? error{errc::unavailable, answer.error().detail()}
                                                                  : answer.error());
                    return;
                  }
                  done(stream_msg_get_answer(answer->data, what));
                });
}

expected<void> connection::check_permitted(std::string_view subject) const {
  const auto quoted = fmt::format("\"{}\"", subject);
  const auto refused = [&](std::string_view text) {
    return text.find("Permissions Violation") != std::string_view::npos && text.find(quoted) != std::string_view::npos;
  };
  {
    std::lock_guard lock{impl_->requests_mutex};
    for (const auto& text : impl_->violations) {
      if (refused(text)) return error{errc::permission_denied, text};
    }
  }
  // The reader thread records the latest error before it reads what the
  // server sent next; the error handler runs later, on a thread of its own,
  // and may not have had it yet. The client gives that record only as its
  // own buffer, which its reader thread rewrites on the server's next error
  // (tools/tsan.supp): it is read only when the handler has not had it.
  const char* last = nullptr;
  if (natsConnection_GetLastError(impl_->nc, &last) == NATS_NOT_PERMITTED && last != nullptr) {
    std::string text{last};
    if (refused(text)) return error{errc::permission_denied, std::move(text)};
  }
  return {};
}

expected<subscription> connection::subscribe(std::string_view subject, handler h, int pending_messages) {
  const auto subj = z(subject);
  auto* nc = impl_->nc;
  auto sub = impl_->make_subscription(
      [&](natsSubscription** out, void* closure) {
        return natsConnection_Subscribe(out, nc, subj.c_str(), &subscription::state::deliver, closure);
      },
      std::move(h), {}, fmt::format("subscribing to {}", subject));
  if (sub) {
    std::lock_guard lock{sub->state_->mutex};
    natsSubscription_SetPendingLimits(sub->state_->sub, pending_messages, 64 * 1024 * 1024);
  }
  return sub;
}

expected<subscription> connection::queue_subscribe(std::string_view subject, std::string_view queue, handler h,
                                                   int pending_messages) {
  const auto subj = z(subject);
  const auto group = z(queue);
  auto* nc = impl_->nc;
  auto sub = impl_->make_subscription(
      [&](natsSubscription** out, void* closure) {
        return natsConnection_QueueSubscribe(out, nc, subj.c_str(), group.c_str(), &subscription::state::deliver,
                                             closure);
      },
      std::move(h), {}, fmt::format("subscribing to {} in queue group {}", subject, queue));
  if (sub) {
    std::lock_guard lock{sub->state_->mutex};
    natsSubscription_SetPendingLimits(sub->state_->sub, pending_messages, 64 * 1024 * 1024);
  }
  return sub;
}

// natsConnection_FlushTimeout reports success when writing its PING fails (the
// socket died before the client noticed), so a flush is a request instead: the
// server answers "no responders" only after it processed everything sent
// before on this connection, and a write that fails never gets that answer.
// It is asked in short rounds so that a connection found lost ends the wait.
expected<void> connection::flush(std::chrono::milliseconds timeout) {
  constexpr std::chrono::milliseconds round{200};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto subject = new_inbox(); // nobody listens there
  for (;;) {
    if (!connected()) return error{errc::unavailable, "flushing: not connected to a server"};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return error{errc::unavailable, "flushing: the server did not answer in time"};
    natsMsg* reply = nullptr;
    const auto s = natsConnection_RequestString(&reply, impl_->nc, subject.c_str(), "", std::min(left, round).count());
    msg_ptr owned{reply};
    if (s == NATS_NO_RESPONDERS || s == NATS_OK) return {};
    if (s != NATS_TIMEOUT) return check(s, "flushing");
  }
}

expected<void> connection::ensure_stream(const stream_config& c) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const auto name = z(c.name);
  std::vector<const char*> subjects;
  subjects.reserve(c.subjects.size());
  for (const auto& s : c.subjects) subjects.push_back(s.c_str());
  cfg.Name = name.c_str();
  cfg.Subjects = subjects.data();
  cfg.SubjectsLen = static_cast<int>(subjects.size());
  cfg.Storage = c.memory_storage ? js_MemoryStorage : js_FileStorage;
  cfg.Replicas = static_cast<int64_t>(c.replicas);
  cfg.AllowDirect = true;
  cfg.Duplicates = std::chrono::duration_cast<std::chrono::nanoseconds>(c.duplicate_window).count();
  cfg.MaxMsgSize = c.max_message_size;
  cfg.MaxMsgs = c.max_messages;
  const auto rp_source = z(c.republish_source);
  const auto rp_destination = z(c.republish_destination);
  jsRePublish rp;
  if (!c.republish_destination.empty()) {
    jsRePublish_Init(&rp);
    rp.Source = rp_source.c_str();
    rp.Destination = rp_destination.c_str();
    cfg.RePublish = &rp;
  }
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsStreamInfo* info = nullptr;
  natsStatus s = js_AddStream(&info, impl_->js, &cfg, nullptr, &jerr);
  if (s != NATS_OK && jerr == stream_name_in_use) {
    jerr = static_cast<jsErrCode>(0);
    s = js_UpdateStream(&info, impl_->js, &cfg, nullptr, &jerr);
  }
  if (info) jsStreamInfo_Destroy(info);
  if (s != NATS_OK) {
    // Another client may have created it at the same moment: then it is there.
    jsStreamInfo* existing = nullptr;
    if (js_GetStreamInfo(&existing, impl_->js, name.c_str(), nullptr, nullptr) == NATS_OK) {
      jsStreamInfo_Destroy(existing);
      return {};
    }
  }
  return check(s, fmt::format("creating stream {}", c.name), jerr);
}

expected<void> connection::delete_stream(std::string_view name) {
  jsErrCode jerr = static_cast<jsErrCode>(0);
  return check(js_DeleteStream(impl_->js, z(name).c_str(), nullptr, &jerr), fmt::format("deleting stream {}", name),
               jerr);
}

expected<std::uint64_t> connection::stream_message_count(std::string_view name) {
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsStreamInfo* info = nullptr;
  if (auto r = check(js_GetStreamInfo(&info, impl_->js, z(name).c_str(), nullptr, &jerr),
                     fmt::format("reading stream {}", name), jerr);
      !r) {
    return r.error();
  }
  const auto n = info->State.Msgs;
  jsStreamInfo_Destroy(info);
  return n;
}

expected<std::string> connection::stream_leader(std::string_view name) {
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsStreamInfo* info = nullptr;
  if (auto r = check(js_GetStreamInfo(&info, impl_->js, z(name).c_str(), nullptr, &jerr),
                     fmt::format("reading stream {}", name), jerr);
      !r) {
    return r.error();
  }
  std::string leader;
  if (info->Cluster != nullptr && info->Cluster->Leader != nullptr) leader = info->Cluster->Leader;
  jsStreamInfo_Destroy(info);
  return leader;
}

expected<message> connection::direct_get_last(std::string_view stream, std::string_view subject) {
  jsDirectGetMsgOptions o;
  jsDirectGetMsgOptions_Init(&o);
  const auto subj = z(subject);
  o.LastBySubject = subj.c_str();
  natsMsg* m = nullptr;
  if (auto r = check(js_DirectGetMsg(&m, impl_->js, z(stream).c_str(), nullptr, &o),
                     fmt::format("reading the last message on {}", subject));
      !r) {
    return r.error();
  }
  msg_ptr owned{m};
  return copy_message(m);
}

expected<message> connection::leader_get_last(std::string_view stream, std::string_view subject) {
  natsMsg* m = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (auto r = check(js_GetLastMsg(&m, impl_->js, z(stream).c_str(), z(subject).c_str(), nullptr, &jerr),
                     fmt::format("reading the last message on {}", subject), jerr);
      !r) {
    return r.error();
  }
  msg_ptr owned{m};
  return copy_message(m);
}

expected<message> connection::direct_get(std::string_view stream, std::uint64_t sequence) {
  jsDirectGetMsgOptions o;
  jsDirectGetMsgOptions_Init(&o);
  o.Sequence = sequence;
  natsMsg* m = nullptr;
  if (auto r = check(js_DirectGetMsg(&m, impl_->js, z(stream).c_str(), nullptr, &o),
                     fmt::format("reading message {} of {}", sequence, stream));
      !r) {
    return r.error();
  }
  msg_ptr owned{m};
  return copy_message(m);
}

expected<message> connection::direct_get_first(std::string_view stream, std::string_view subject) {
  jsDirectGetMsgOptions o;
  jsDirectGetMsgOptions_Init(&o);
  const auto subj = z(subject);
  o.Sequence = 1;
  o.NextBySubject = subj.c_str();
  natsMsg* m = nullptr;
  if (auto r = check(js_DirectGetMsg(&m, impl_->js, z(stream).c_str(), nullptr, &o),
                     fmt::format("reading the first message on {}", subject));
      !r) {
    return r.error();
  }
  msg_ptr owned{m};
  return copy_message(m);
}

expected<std::uint64_t> connection::stream_publish(std::string_view subject, std::string_view data,
                                                   std::span<const header> headers) {
  auto m = build(subject, {}, data, headers);
  if (!m) return m.error();
  jsPubAck* ack = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (auto r =
          check(js_PublishMsg(&ack, impl_->js, m->get(), nullptr, &jerr), fmt::format("publishing {}", subject), jerr);
      !r) {
    return r.error();
  }
  const auto seq = ack->Sequence;
  jsPubAck_Destroy(ack);
  return seq;
}

expected<subscription> connection::follow(std::string_view stream, std::string_view filter, handler on_message,
                                          std::function<void()> on_closed) {
  const auto stream_name = z(stream);
  const auto subject = z(filter);
  auto* js = impl_->js;
  jsErrCode create_code = static_cast<jsErrCode>(0);
  return impl_->make_subscription(
      [&](natsSubscription** out, void* closure) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = stream_name.c_str();
        so.Ordered = true;
        so.Config.DeliverPolicy = js_DeliverAll;
        return js_Subscribe(out, js, subject.c_str(), &subscription::state::deliver, closure, nullptr, &so,
                            &create_code);
      },
      std::move(on_message), std::move(on_closed), fmt::format("following {} on {}", filter, stream), &create_code);
}

expected<subscription> connection::replay(std::string_view stream, std::string_view filter, std::uint64_t start,
                                          std::function<bool(const message_view&)> on_message,
                                          std::function<void(expected<void>)> on_done) {
  struct progress {
    std::atomic<bool> done{false};
    std::function<bool(const message_view&)> on_message;
    std::function<void(expected<void>)> on_done;
    void finish(expected<void> r) {
      if (!done.exchange(true)) on_done(std::move(r));
    }
  };
  auto p = std::make_shared<progress>();
  p->on_message = std::move(on_message);
  p->on_done = std::move(on_done);

  const auto stream_name = z(stream);
  const auto subject = z(filter);
  auto* js = impl_->js;
  jsErrCode create_code = static_cast<jsErrCode>(0);
  auto sub = impl_->make_subscription(
      [&](natsSubscription** out, void* closure) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = stream_name.c_str();
        so.Ordered = true;
        if (start > 1) {
          so.Config.DeliverPolicy = js_DeliverByStartSequence;
          so.Config.OptStartSeq = start;
        } else {
          so.Config.DeliverPolicy = js_DeliverAll;
        }
        return js_Subscribe(out, js, subject.c_str(), &subscription::state::deliver, closure, nullptr, &so,
                            &create_code);
      },
      [p](const message_view& m) {
        if (p->done.load()) return;
        auto seq = m.sequence_and_pending();
        if (!seq) {
          p->finish(seq.error());
          return;
        }
        if (!p->on_message(m)) {
          p->finish({});
          return;
        }
        if (seq->second == 0) p->finish({});
      },
      [p] {
        p->finish(error{errc::unavailable, "the replay subscription closed before the end"});
      },
      fmt::format("replaying {} from {}", filter, start), &create_code);
  if (!sub) return sub.error();
  // Nothing to deliver: the consumer says so at once.
  jsConsumerInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s;
  {
    std::lock_guard lock{sub->state_->mutex};
    s = natsSubscription_GetConsumerInfo(&info, sub->state_->sub, nullptr, &jerr);
  }
  if (s != NATS_OK) {
    p->finish(to_error(s, "reading the replay consumer", jerr));
  } else {
    // Nothing pending and nothing delivered: nothing matches. (Anything delivered
    // finishes the replay itself: its last message says 0 pending.)
    if (info->NumPending == 0 && info->Delivered.Consumer == 0) p->finish({});
    jsConsumerInfo_Destroy(info);
  }
  return sub;
}

// The subscription to the consumer's deliver subject comes first, as a plain
// one: the server then has the interest before the consumer exists, and no
// check that the consumer is "bound" elsewhere can misread a fresh consumer on
// a cluster (nats.c's bind asks the server, whose answer lags under load).
expected<subscription> connection::consume_durable(const durable_consumer_config& c, handler h) {
  const auto stream = z(c.stream);
  const auto name = z(c.name);
  const auto deliver = new_inbox();
  auto sub = subscribe(deliver, std::move(h));
  if (!sub) return sub.error();
  {
    // The server holds back all but max_ack_pending messages: no client limit.
    std::lock_guard lock{sub->state_->mutex};
    natsSubscription_SetPendingLimits(sub->state_->sub, -1, -1);
  }
  jsConsumerConfig cfg;
  jsConsumerConfig_Init(&cfg);
  cfg.Durable = name.c_str();
  cfg.DeliverSubject = deliver.c_str();
  cfg.AckPolicy = js_AckAll;
  cfg.AckWait = std::chrono::duration_cast<std::chrono::nanoseconds>(c.ack_wait).count();
  cfg.MaxAckPending = c.max_ack_pending;
  cfg.Heartbeat = std::chrono::duration_cast<std::chrono::nanoseconds>(c.idle_heartbeat).count();
  if (c.start_sequence > 1) {
    cfg.DeliverPolicy = js_DeliverByStartSequence;
    cfg.OptStartSeq = c.start_sequence;
  } else {
    cfg.DeliverPolicy = js_DeliverAll;
  }
  jsConsumerInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (auto r = check(js_AddConsumer(&info, impl_->js, stream.c_str(), &cfg, nullptr, &jerr),
                     fmt::format("creating consumer {} on {}", c.name, c.stream), jerr);
      !r) {
    return r.error();
  }
  jsConsumerInfo_Destroy(info);
  return sub;
}

expected<consumer_state> connection::consumer(std::string_view stream, std::string_view name) {
  jsConsumerInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (auto r = check(js_GetConsumerInfo(&info, impl_->js, z(stream).c_str(), z(name).c_str(), nullptr, &jerr),
                     fmt::format("reading consumer {} on {}", name, stream), jerr);
      !r) {
    return r.error();
  }
  const consumer_state out{info->AckFloor.Stream, info->PushBound,
                           info->NumPending + static_cast<std::uint64_t>(std::max<int64_t>(info->NumAckPending, 0))};
  jsConsumerInfo_Destroy(info);
  return out;
}

expected<void> connection::delete_consumer(std::string_view stream, std::string_view name) {
  jsErrCode jerr = static_cast<jsErrCode>(0);
  return check(js_DeleteConsumer(impl_->js, z(stream).c_str(), z(name).c_str(), nullptr, &jerr),
               fmt::format("deleting consumer {} on {}", name, stream), jerr);
}

expected<void> connection::ack(std::string_view reply) { return publish(reply, "+ACK"); }

expected<void> connection::ensure_bucket(const bucket_config& c) {
  kvConfig cfg;
  kvConfig_Init(&cfg);
  const auto name = z(c.name);
  cfg.Bucket = name.c_str();
  cfg.Replicas = c.replicas;
  cfg.History = static_cast<uint8_t>(c.history);
  cfg.StorageType = js_FileStorage;
  // nats.c's own requests wait their timeout when the server refuses their
  // subject: ask once through `request`, which ends at the refusal.
  if (auto info = request(fmt::format("$JS.API.STREAM.INFO.KV_{}", c.name), "", std::chrono::seconds{5});
      !info && info.error().code() == errc::permission_denied) {
    return error{errc::permission_denied, fmt::format("opening bucket {}: {}", c.name, info.error().detail())};
  }
  kvStore* kv = nullptr;
  natsStatus s = js_KeyValue(&kv, impl_->js, name.c_str());
  if (s == NATS_NOT_FOUND) s = js_CreateKeyValue(&kv, impl_->js, &cfg);
  if (kv) kvStore_Destroy(kv);
  return check(s, fmt::format("opening bucket {}", c.name));
}

expected<void> connection::delete_bucket(std::string_view name) {
  return check(js_DeleteKeyValue(impl_->js, z(name).c_str()), fmt::format("deleting bucket {}", name));
}

expected<kv_entry> connection::kv_get(std::string_view bucket, std::string_view key) {
  auto m = direct_get_last(fmt::format("KV_{}", bucket), fmt::format("$KV.{}.{}", bucket, key));
  if (!m) return m.error();
  if (auto op = m->header("KV-Operation"); op && (*op == "DEL" || *op == "PURGE")) {
    return error{errc::not_found, fmt::format("{} in {} was deleted", key, bucket)};
  }
  return kv_entry{std::move(m->data), m->sequence};
}

namespace {
expected<std::uint64_t> kv_write(jsCtx* js, std::string_view bucket, std::string_view key, std::string_view value,
                                 std::optional<std::uint64_t> expected_revision) {
  const auto subject = fmt::format("$KV.{}.{}", bucket, key);
  const auto rev = expected_revision ? std::to_string(*expected_revision) : std::string{};
  std::vector<header> headers;
  if (expected_revision) headers.push_back({"Nats-Expected-Last-Subject-Sequence", rev});
  auto m = build(subject, {}, value, headers);
  if (!m) return m.error();
  jsPubAck* ack = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (auto r =
          check(js_PublishMsg(&ack, js, m->get(), nullptr, &jerr), fmt::format("writing {} in {}", key, bucket), jerr);
      !r) {
    return r.error();
  }
  const auto seq = ack->Sequence;
  jsPubAck_Destroy(ack);
  return seq;
}
} // namespace

expected<std::uint64_t> connection::kv_put(std::string_view bucket, std::string_view key, std::string_view value) {
  return kv_write(impl_->js, bucket, key, value, std::nullopt);
}
expected<std::uint64_t> connection::kv_create(std::string_view bucket, std::string_view key, std::string_view value) {
  return kv_write(impl_->js, bucket, key, value, 0);
}
expected<std::uint64_t> connection::kv_update(std::string_view bucket, std::string_view key, std::string_view value,
                                              std::uint64_t revision) {
  return kv_write(impl_->js, bucket, key, value, revision);
}

} // namespace aether::nats
