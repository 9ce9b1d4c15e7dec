# Strict warnings for project C++ code (design guide §3.11). Applied per target through
# qvm_strict(<target>) so third-party headers and the freestanding guest are not affected.
set(QVM_STRICT_FLAGS
  -Wall -Wextra -Werror -Wconversion -Wsign-conversion -Wshadow -Wold-style-cast
  -Wsuggest-override -Wzero-as-null-pointer-constant -Wnon-virtual-dtor -Woverloaded-virtual
  -Wnull-dereference -Wimplicit-fallthrough)
# GCC 12 reports false positives inside libstdc++ (vector/copy) at -O2: warn, do not fail.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  list(APPEND QVM_STRICT_FLAGS -Wno-error=array-bounds -Wno-error=stringop-overflow
       -Wno-error=stringop-overread -Wno-error=restrict -Wno-error=null-dereference)
endif()

function(qvm_strict target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${QVM_STRICT_FLAGS}>)
endfunction()

# qvm_library(name SOURCES ... DEPS ...): one static library per layer.
function(qvm_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  qvm_strict(${name})
endfunction()
