# Runs every program with --help and --version: both exit with 0, --help
# documents the exit codes and --version names the project's version.
foreach(program IN LISTS PROGRAMS)
  execute_process(COMMAND ${program} --version RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  TIMEOUT 30)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "\\(aether ${AETHER_VERSION}\\)")
    message(FATAL_ERROR "${program} --version: exit ${rc}, output '${out}${err}'")
  endif()
  execute_process(COMMAND ${program} --help RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 30)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "Usage:" OR NOT out MATCHES "Exit codes:\n  0  ")
    message(FATAL_ERROR "${program} --help: exit ${rc}, output '${out}${err}'")
  endif()
  message(STATUS "${program}: --help and --version answered")
endforeach()
if(NOT PROGRAMS)
  message(FATAL_ERROR "no programs to check")
endif()
