# Finds LibTorch, LuaJIT, libvips and libarchive (unless MONGE_WITH_VIPS=OFF), Boost (DLL +
# filesystem), zlib and GoogleTest.
# On Debian 12 all come from packages: run scripts/install-deps.sh.

set(_monge_hint "Run scripts/install-deps.sh (Debian 12) to install every package monge needs.")

find_package(Torch QUIET)
if(NOT Torch_FOUND)
  message(FATAL_ERROR "monge: LibTorch not found (package libtorch-dev, or set Torch_DIR). ${_monge_hint}")
endif()
# TorchConfig adds its C++ ABI flag to TORCH_CXX_FLAGS; everything in the process must agree.
string(REGEX MATCH "_GLIBCXX_USE_CXX11_ABI=([01])" _abi "${TORCH_CXX_FLAGS}")
set(MONGE_TORCH_CXX11_ABI "${CMAKE_MATCH_1}")
if(MONGE_TORCH_CXX11_ABI STREQUAL "")
  set(MONGE_TORCH_CXX11_ABI 1)
endif()
message(STATUS "monge: LibTorch ${Torch_VERSION} (C++11 ABI=${MONGE_TORCH_CXX11_ABI})")
# Torch's imported target carries its own include dirs and the ABI define.
add_library(monge_torch INTERFACE)
target_link_libraries(monge_torch INTERFACE ${TORCH_LIBRARIES})
target_compile_definitions(monge_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${MONGE_TORCH_CXX11_ABI})

find_package(Boost 1.70 REQUIRED COMPONENTS filesystem)
find_package(ZLIB REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)  # Debian nlohmann-json3-dev: every JSON read and write
find_package(PkgConfig REQUIRED)
pkg_check_modules(LUAJIT REQUIRED IMPORTED_TARGET luajit)
if(MONGE_WITH_VIPS)
  pkg_check_modules(VIPS IMPORTED_TARGET vips)
  if(NOT VIPS_FOUND)
    message(FATAL_ERROR "monge: libvips not found (package libvips-dev). ${_monge_hint} "
                        "Or configure with -DMONGE_WITH_VIPS=OFF for a training-only build.")
  endif()
  # Batch inputs from tar and zip archives (CMake's FindLibArchive); batch needs image I/O anyway,
  # so a training-only build needs neither.
  find_package(LibArchive 3.3 QUIET)
  if(NOT LibArchive_FOUND)
    message(FATAL_ERROR "monge: libarchive not found (package libarchive-dev). ${_monge_hint} "
                        "Or configure with -DMONGE_WITH_VIPS=OFF for a training-only build.")
  endif()
endif()

find_package(Threads REQUIRED)

# One precompiled header for LibTorch, reused by every target that compiles against it.
add_library(monge_pch OBJECT "${CMAKE_CURRENT_LIST_DIR}/pch.cpp")
target_link_libraries(monge_pch PUBLIC monge_torch)
if(MONGE_USE_PCH)
  target_precompile_headers(monge_pch PRIVATE <torch/torch.h>)
endif()

# Makes `target` compile with the shared LibTorch precompiled header.
function(monge_use_pch target)
  if(MONGE_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM monge_pch)
    # The header is compiled with -fPIC; executables would get -fPIE and not use it.
    get_target_property(_type ${target} TYPE)
    if(_type STREQUAL "EXECUTABLE")
      set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
      target_compile_options(${target} PRIVATE -fPIC)
    endif()
  endif()
endfunction()
