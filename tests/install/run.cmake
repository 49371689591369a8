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
if(rc OR NOT out MATCHES "total 42")
  message(FATAL_ERROR "the consumer failed: ${rc} ${out}")
endif()
file(REMOVE_RECURSE ${WORK_DIR})
