# Installs the build into a temporary prefix, then configures, builds and runs
# a separate project that finds it with find_package(aether). A cross build
# (TOOLCHAIN_FILE set) builds the consumer with the same toolchain and runs it
# through the EMULATOR.
file(REMOVE_RECURSE ${WORK_DIR})
set(consumer_args -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
if(TOOLCHAIN_FILE)
  # A cross build searches its find root only: name the package's directory itself.
  list(APPEND consumer_args -DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN_FILE} -DAETHER_ARM64_SYSROOT=${ARM64_SYSROOT}
       -Daether_DIR=${WORK_DIR}/prefix/lib/cmake/aether)
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --install ${AETHER_BUILD_DIR} --prefix ${WORK_DIR}/prefix
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "install failed: ${rc}")
endif()
# The programs installed with the libraries run from the prefix.
execute_process(COMMAND ${EMULATOR} ${WORK_DIR}/prefix/bin/aetherctl --version RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(rc OR NOT out MATCHES "aetherctl \\(aether ${AETHER_VERSION}\\)")
  message(FATAL_ERROR "the installed aetherctl --version: ${rc} '${out}'")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
                        ${consumer_args} RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the consumer failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the consumer failed: ${rc}")
endif()
execute_process(COMMAND ${EMULATOR} ${WORK_DIR}/build/consumer RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(rc OR NOT out MATCHES "aether ${AETHER_VERSION} total 42")
  message(FATAL_ERROR "the consumer failed: ${rc} ${out}")
endif()

# The same program built with the compiler and pkg-config alone (a native
# build only: pkg-config's paths are the host's).
if(NOT TOOLCHAIN_FILE)
  find_program(PKG_CONFIG pkg-config REQUIRED)
  find_program(CXX_COMPILER NAMES c++ g++ REQUIRED)
  set(ENV{PKG_CONFIG_PATH} "${WORK_DIR}/prefix/${LIBDIR}/pkgconfig")
  execute_process(COMMAND ${PKG_CONFIG} --modversion aether OUTPUT_VARIABLE version RESULT_VARIABLE rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(rc OR NOT version STREQUAL AETHER_VERSION)
    message(FATAL_ERROR "pkg-config --modversion aether: ${rc} '${version}', wanted ${AETHER_VERSION}")
  endif()
  execute_process(COMMAND ${PKG_CONFIG} --cflags --libs aether OUTPUT_VARIABLE flags RESULT_VARIABLE rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(rc)
    message(FATAL_ERROR "pkg-config --cflags --libs aether failed: ${rc}")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  execute_process(COMMAND ${CXX_COMPILER} ${CONSUMER_SOURCE_DIR}/main.cpp -o ${WORK_DIR}/pc_consumer ${flags}
                  RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "building the consumer with pkg-config failed: ${rc}")
  endif()
  execute_process(COMMAND ${WORK_DIR}/pc_consumer RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  if(rc OR NOT out MATCHES "aether ${AETHER_VERSION} total 42")
    message(FATAL_ERROR "the pkg-config consumer failed: ${rc} ${out}")
  endif()
endif()
file(REMOVE_RECURSE ${WORK_DIR})
