# monge_add_plugin(<name> SOURCES <files...> [LIBRARIES <libs...>])
#
# Builds one plugin library `<name>.monge.so` into the host's plugin directory (in the build tree
# the host finds it without installing) and installs it with the host. Works in the monge source
# tree and, through find_package(Monge), for out-of-tree plugins.

function(monge_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "monge_add_plugin(${name}): SOURCES is required")
  endif()
  set(target monge_plugin_${name})
  add_library(${target} MODULE ${ARG_SOURCES})
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME "${name}"
    PREFIX ""
    SUFFIX ".monge.so"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(TARGET monge::sdk)
    target_link_libraries(${target} PRIVATE monge::sdk ${ARG_LIBRARIES})
  else()
    target_link_libraries(${target} PRIVATE monge_sdk ${ARG_LIBRARIES})
  endif()
  if(COMMAND monge_use_pch)
    monge_use_pch(${target})
    target_link_libraries(${target} PRIVATE monge_warnings)
  endif()
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  elseif(DEFINED MONGE_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${MONGE_PLUGIN_OUTPUT_DIR}")
    install(TARGETS ${target} LIBRARY DESTINATION "${MONGE_PLUGIN_SUBDIR}" COMPONENT plugins)
    # Every plugin of the tree: the registry-wide test (tests/plugins/registry_golden_test.cpp)
    # depends on all of them without a list to keep.
    set_property(GLOBAL APPEND PROPERTY MONGE_PLUGIN_TARGETS ${target})
  endif()
  set(MONGE_LAST_PLUGIN_TARGET ${target} PARENT_SCOPE)
endfunction()
