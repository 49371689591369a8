# nats.c as the imported target cnats::nats. Debian's own cnats config refers
# to a static library the package does not ship, so it cannot be used.
if(NOT TARGET cnats::nats)
  find_library(AETHER_NATS_LIBRARY NAMES nats REQUIRED)
  find_path(AETHER_NATS_INCLUDE_DIR nats/nats.h REQUIRED)
  add_library(cnats::nats SHARED IMPORTED GLOBAL)
  set_target_properties(cnats::nats PROPERTIES IMPORTED_LOCATION "${AETHER_NATS_LIBRARY}"
                                               INTERFACE_INCLUDE_DIRECTORIES "${AETHER_NATS_INCLUDE_DIR}")
endif()
