// Asio is compiled once, here (ASIO_SEPARATE_COMPILATION).
#include <asio/impl/src.hpp>
