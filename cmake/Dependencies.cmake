# Every dependency is a Debian package (scripts/deps installs them by name).
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED COMPONENTS json url)
find_package(PkgConfig REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(OpenSSL REQUIRED)
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
