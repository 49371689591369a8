#pragma once

/// Forward declarations of the runtime module.
namespace aether {
enum class errc;
class error;
template <class T>
class expected;
template <class Signature>
class unique_function;
class executor;
class thread_pool_executor;
class manual_executor;
} // namespace aether
