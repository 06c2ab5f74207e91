# Warnings every memgate target compiles with.
add_library(memgate_warnings INTERFACE)
target_compile_options(memgate_warnings INTERFACE -Wall -Wextra -Wpedantic -Wno-unused-parameter)
if(MEMGATE_WERROR)
  target_compile_options(memgate_warnings INTERFACE -Werror)
endif()
if(MEMGATE_ASAN)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# memgate_library(NAME SOURCES ... DEPS ...): one small library per folder.
function(memgate_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE memgate_warnings)
endfunction()

# memgate_test(NAME SOURCES ... DEPS ... LABELS ... [BINARY]): a GoogleTest binary
# whose tests ctest lists one by one, labelled unit (default), integration or
# slow. Every test knows the source tree at compile time (MEMGATE_SOURCE_ROOT).
# BINARY: the tests run the memgate executable (MEMGATE_BINARY in their
# environment), so they are built after it; the others do not wait for it.
function(memgate_test name)
  if(NOT MEMGATE_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "BINARY" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock memgate_warnings)
  target_compile_definitions(${name} PRIVATE MEMGATE_SOURCE_ROOT="${PROJECT_SOURCE_DIR}")
  # One ENVIRONMENT entry at most: gtest_discover_tests splits a list value at
  # its semicolons, so a second entry would not reach the tests.
  set(env "")
  if(ARG_BINARY)
    set(env ENVIRONMENT "MEMGATE_BINARY=$<TARGET_FILE:memgate>")
    add_dependencies(${name} memgate)
  endif()
  # NO_PRETTY_VALUES: parametrized tests are named by a generator already
  # (LeaseLock.X/Sentinel); without it ctest appends "  # GetParam() = ...".
  gtest_discover_tests(${name}
    DISCOVERY_TIMEOUT 60 NO_PRETTY_VALUES
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT} ${env})
endfunction()

# The fuzz preset instruments every library for coverage; each fuzz target adds
# -fsanitize=fuzzer itself (it provides main).
if(MEMGATE_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
