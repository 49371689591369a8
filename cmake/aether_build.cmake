# Build settings shared by every Aether target.

# Warnings and sanitizers: an internal target linked PRIVATE by each of ours.
add_library(aether_build_flags INTERFACE)
target_compile_features(aether_build_flags INTERFACE cxx_std_20)
target_compile_options(aether_build_flags INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                       -Wold-style-cast -Wcast-align -Woverloaded-virtual)
if(AETHER_ENABLE_WERROR)
  target_compile_options(aether_build_flags INTERFACE -Werror)
endif()
if(AETHER_SANITIZERS)
  target_compile_options(aether_build_flags INTERFACE -fsanitize=${AETHER_SANITIZERS} -fno-omit-frame-pointer
                         -fno-sanitize-recover=all)
  target_link_options(aether_build_flags INTERFACE -fsanitize=${AETHER_SANITIZERS})
  if(AETHER_SANITIZERS MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # Asio uses std::atomic_thread_fence, which GCC warns TSan cannot model.
    target_compile_options(aether_build_flags INTERFACE -Wno-tsan)
  endif()
endif()

# Standalone Asio, compiled once in aether::runtime.
find_path(AETHER_ASIO_INCLUDE_DIR asio.hpp REQUIRED)
add_library(aether_asio INTERFACE)
target_include_directories(aether_asio SYSTEM INTERFACE ${AETHER_ASIO_INCLUDE_DIR})
target_compile_definitions(aether_asio INTERFACE ASIO_STANDALONE ASIO_SEPARATE_COMPILATION ASIO_NO_DEPRECATED)

# moodycamel::ConcurrentQueue, header only; stays out of public headers.
find_path(AETHER_CONCURRENTQUEUE_INCLUDE_DIR concurrentqueue/concurrentqueue.h REQUIRED)
add_library(aether_concurrentqueue INTERFACE)
target_include_directories(aether_concurrentqueue SYSTEM INTERFACE ${AETHER_CONCURRENTQUEUE_INCLUDE_DIR})

# aether_add_library(<module> SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
# One folder, one library: aether_<module>, alias aether::<module>, public
# headers in <module>/include.
function(aether_add_library module)
  cmake_parse_arguments(arg "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  set(target aether_${module})
  add_library(${target} ${arg_SOURCES})
  add_library(aether::${module} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${module} POSITION_INDEPENDENT_CODE ON)
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
                                              $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(${target} PUBLIC ${arg_PUBLIC_DEPS} PRIVATE $<BUILD_INTERFACE:aether_build_flags>)
  foreach(dep IN LISTS arg_PRIVATE_DEPS)
    if(dep MATCHES "^aether_")
      # Internal interface targets (flags, header-only includes) are not exported.
      target_link_libraries(${target} PRIVATE $<BUILD_INTERFACE:${dep}>)
    else()
      # A real library: a static consumer still links it (exported as LINK_ONLY).
      target_link_libraries(${target} PRIVATE ${dep})
    endif()
  endforeach()
  install(TARGETS ${target} EXPORT aetherTargets)
  install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endfunction()

# aether_check_headers(<target> <libraries>...): compiles every public header
# of the libraries on its own, and each module's fwd.hpp together with all of
# the module's headers, so a forward declaration that does not match its
# definition (a class declared for a template) fails the build.
function(aether_check_headers target)
  set(sources)
  foreach(lib IN LISTS ARGN)
    get_target_property(real ${lib} ALIASED_TARGET)
    get_target_property(dir ${real} SOURCE_DIR)
    file(GLOB_RECURSE headers RELATIVE ${dir}/include CONFIGURE_DEPENDS ${dir}/include/*.hpp)
    set(fwd_content "")
    foreach(header IN LISTS headers)
      string(MAKE_C_IDENTIFIER ${header} name)
      set(file ${CMAKE_CURRENT_BINARY_DIR}/check_headers/${name}.cpp)
      file(CONFIGURE OUTPUT ${file} CONTENT "#include <${header}>\n")
      list(APPEND sources ${file})
      if(header MATCHES "/fwd\\.hpp$")
        set(fwd_header ${header})
      else()
        string(APPEND fwd_content "#include <${header}>\n")
      endif()
    endforeach()
    if(fwd_header)
      string(MAKE_C_IDENTIFIER ${fwd_header} name)
      set(file ${CMAKE_CURRENT_BINARY_DIR}/check_headers/${name}_with_module.cpp)
      file(CONFIGURE OUTPUT ${file} CONTENT "#include <${fwd_header}>\n${fwd_content}")
      list(APPEND sources ${file})
      unset(fwd_header)
    endif()
  endforeach()
  add_library(${target} OBJECT EXCLUDE_FROM_ALL ${sources})
  target_link_libraries(${target} PRIVATE ${ARGN} aether_build_flags)
endfunction()
