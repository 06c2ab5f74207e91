# Every dependency is a Debian package (scripts/deps installs them by name).
find_package(Threads REQUIRED)

# Start-up cost: with every library shared, the dynamic loader maps 16 objects
# and resolves each symbol through all of them, which was about half the CPU of
# `memgate check-config` (docs/benchmarks.md, start-up). The -dev packages of
# OpenSSL, hiredis, SQLite, zstd, zlib and Boost.JSON/URL also ship static archives
# (.a, position-independent as Debian's compiler defaults to PIE); linking those
# took `check-config` from 9.4 to 5.0 ms of CPU. spdlog, fmt and prometheus-cpp
# ship no archive, so they and the libstdc++ they share stay shared; jemalloc
# stays shared too (static made no measurable difference). Where an archive is
# missing, the shared library is used as before.
option(MEMGATE_STATIC_DEPS "Link the static archives of OpenSSL, hiredis, SQLite, zstd, zlib, Boost.JSON/URL where installed" ON)
if(MEMGATE_STATIC_DEPS)
  find_library(MEMGATE_LIBSSL_A NAMES libssl.a)
  find_library(MEMGATE_LIBCRYPTO_A NAMES libcrypto.a)
  if(MEMGATE_LIBSSL_A AND MEMGATE_LIBCRYPTO_A)
    set(OPENSSL_USE_STATIC_LIBS TRUE)
    # Also over a cache filled by an earlier configure (a normal variable wins).
    set(OPENSSL_SSL_LIBRARY "${MEMGATE_LIBSSL_A}")
    set(OPENSSL_CRYPTO_LIBRARY "${MEMGATE_LIBCRYPTO_A}")
  endif()
  # zlib (the pprof heap profile's gzip); also over a cache an earlier
  # find_package(ZLIB) filled with the shared library (prometheus-cpp's config
  # may look for it).
  find_library(MEMGATE_LIBZ_A NAMES libz.a)
  if(MEMGATE_LIBZ_A)
    set(ZLIB_USE_STATIC_LIBS ON)
    set(ZLIB_LIBRARY_RELEASE "${MEMGATE_LIBZ_A}")
  endif()
  find_library(MEMGATE_LIBBOOST_JSON_A NAMES libboost_json.a)
  find_library(MEMGATE_LIBBOOST_URL_A NAMES libboost_url.a)
  if(MEMGATE_LIBBOOST_JSON_A AND MEMGATE_LIBBOOST_URL_A)
    set(Boost_USE_STATIC_LIBS ON)
  endif()
  # pkg_check_modules takes the library path from pkgcfg_lib_<PREFIX>_<name>
  # when that variable is set (documented in FindPkgConfig); these prefixes are
  # the ones used here and in memgate/kb.
  foreach(lib hiredis sqlite3 zstd)
    find_library(MEMGATE_LIB${lib}_A NAMES lib${lib}.a)
  endforeach()
  if(MEMGATE_LIBhiredis_A)
    set(pkgcfg_lib_HIREDIS_hiredis "${MEMGATE_LIBhiredis_A}")
  endif()
  if(MEMGATE_LIBsqlite3_A)
    set(pkgcfg_lib_SQLITE3_sqlite3 "${MEMGATE_LIBsqlite3_A}")
  endif()
  if(MEMGATE_LIBzstd_A)
    set(pkgcfg_lib_ZSTD_zstd "${MEMGATE_LIBzstd_A}")
  endif()
endif()

find_package(Boost 1.81 REQUIRED COMPONENTS json url)
find_package(PkgConfig REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(ZLIB REQUIRED)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)

if(MEMGATE_ALLOCATOR STREQUAL "jemalloc")
  pkg_check_modules(JEMALLOC REQUIRED IMPORTED_TARGET jemalloc)
elseif(NOT MEMGATE_ALLOCATOR STREQUAL "glibc")
  message(FATAL_ERROR "MEMGATE_ALLOCATOR must be jemalloc or glibc, not '${MEMGATE_ALLOCATOR}'")
endif()

if(MEMGATE_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(MEMGATE_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# Boost.Asio/Beast settings shared by every target that includes them.
add_library(memgate_boost INTERFACE)
target_link_libraries(memgate_boost INTERFACE Boost::headers Boost::json Boost::url Threads::Threads)
target_compile_definitions(memgate_boost INTERFACE
  BOOST_ASIO_NO_DEPRECATED
  BOOST_BEAST_USE_STD_STRING_VIEW
  BOOST_ASIO_DISABLE_BOOST_COROUTINE)
