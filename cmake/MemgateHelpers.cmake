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

# memgate_test(NAME SOURCES ... DEPS ... LABELS ...): a GoogleTest binary whose tests
# ctest lists one by one, labelled unit (default), integration or slow.
function(memgate_test name)
  if(NOT MEMGATE_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock memgate_warnings)
  gtest_discover_tests(${name}
    DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "MEMGATE_BINARY=$<TARGET_FILE:memgate>;MEMGATE_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()

# The fuzz preset instruments every library for coverage; each fuzz target adds
# -fsanitize=fuzzer itself (it provides main).
if(MEMGATE_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
