# Cross-building Aether for aarch64 (ARM64) Linux with Debian's g++-aarch64-linux-gnu.
#
# The C library comes with the cross compiler (/usr/aarch64-linux-gnu). Every other dependency
# comes from Debian's arm64 packages unpacked into a sysroot directory: AETHER_ARM64_SYSROOT
# (tools/cross_arm64.sh makes it in the build directory). The build tree's RPATH points there,
# and tests run under qemu-user with the cross C library as its prefix.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

if(NOT AETHER_ARM64_SYSROOT)
  set(AETHER_ARM64_SYSROOT "$ENV{AETHER_ARM64_SYSROOT}")
endif()
if(NOT AETHER_ARM64_SYSROOT OR NOT IS_DIRECTORY "${AETHER_ARM64_SYSROOT}")
  message(FATAL_ERROR "AETHER_ARM64_SYSROOT must name a directory of unpacked arm64 packages "
                      "(tools/cross_arm64.sh makes one)")
endif()
# Passed on to try_compile projects, which read this file again.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES AETHER_ARM64_SYSROOT)

set(CMAKE_FIND_ROOT_PATH "${AETHER_ARM64_SYSROOT}" /usr/aarch64-linux-gnu)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# libnats links libssl, libcrypto and libprotobuf-c: let the linker find them in the sysroot.
# Debian's multiarch headers (OpenSSL's opensslconf.h, for one) live beside
# the common ones, under the architecture's own include directory.
set(CMAKE_C_FLAGS_INIT "-isystem ${AETHER_ARM64_SYSROOT}/usr/include/aarch64-linux-gnu")
set(CMAKE_CXX_FLAGS_INIT "-isystem ${AETHER_ARM64_SYSROOT}/usr/include/aarch64-linux-gnu")

set(aether_arm64_libdir "${AETHER_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu")
# Build-tree binaries find the sysroot's shared libraries without LD_LIBRARY_PATH. DT_RPATH, not
# RUNPATH: it also serves the libraries' own dependencies (libnats needs libssl).
set(aether_arm64_link_flags "-Wl,-rpath-link,${aether_arm64_libdir} -Wl,--disable-new-dtags")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${aether_arm64_link_flags}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${aether_arm64_link_flags}")
set(CMAKE_BUILD_RPATH "${aether_arm64_libdir}")

# CTest (and doctest's test discovery) run every test binary through qemu-user.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
