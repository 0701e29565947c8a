# Compiler launcher and warnings shared by every target of the build.

if(MONGE_USE_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  find_program(MONGE_CCACHE ccache)
  if(MONGE_CCACHE)
    # Precompiled headers are only cached with these sloppiness settings.
    set(CMAKE_CXX_COMPILER_LAUNCHER
        ${CMAKE_COMMAND} -E env "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
        ${MONGE_CCACHE})
    set(CMAKE_C_COMPILER_LAUNCHER ${CMAKE_CXX_COMPILER_LAUNCHER})
    message(STATUS "monge: compiling through ccache (${MONGE_CCACHE})")
  endif()
endif()

# Warnings for our own code; third-party headers come in as system includes.
add_library(monge_warnings INTERFACE)
target_compile_options(monge_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wno-unused-parameter -Winvalid-pch>)

# Every translation unit compiles with -pthread: libvips' flags add it to some targets, and the
# shared precompiled header is only valid where _REENTRANT is defined the same way.
set(THREADS_PREFER_PTHREAD_FLAG ON)
add_compile_options($<$<CXX_COMPILER_ID:GNU,Clang>:-pthread>)
