# Installs the SDK's CMake package so out-of-tree plugins can find_package(Monge), and writes a
# build-tree copy (build/cmake/MongeConfig.cmake) usable without installing.
include(CMakePackageConfigHelpers)

set(MONGE_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/Monge")

# Build tree: headers from the source tree.
set(MONGE_CONFIG_INCLUDE_DIR "${PROJECT_SOURCE_DIR}/sdk/include")
set(MONGE_CONFIG_MODULE_DIR "${PROJECT_SOURCE_DIR}/cmake")
configure_file(cmake/MongeConfig.cmake.in "${CMAKE_BINARY_DIR}/cmake/MongeConfig.cmake" @ONLY)
write_basic_package_version_file("${CMAKE_BINARY_DIR}/cmake/MongeConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)

# Install tree: paths relative to the config file's location.
set(MONGE_CONFIG_INCLUDE_DIR "\${PACKAGE_PREFIX_DIR}/${CMAKE_INSTALL_INCLUDEDIR}")
set(MONGE_CONFIG_MODULE_DIR "\${CMAKE_CURRENT_LIST_DIR}")
configure_package_config_file(cmake/MongeConfig.cmake.in "${CMAKE_BINARY_DIR}/cmake/install/MongeConfig.cmake"
  INSTALL_DESTINATION "${MONGE_CMAKE_INSTALL_DIR}")
install(FILES "${CMAKE_BINARY_DIR}/cmake/install/MongeConfig.cmake"
              "${CMAKE_BINARY_DIR}/cmake/MongeConfigVersion.cmake"
              cmake/MongeAddPlugin.cmake
        DESTINATION "${MONGE_CMAKE_INSTALL_DIR}" COMPONENT sdk)
