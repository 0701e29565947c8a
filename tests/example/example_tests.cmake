# Builds examples/custom_operator against this build tree's SDK package, then uses the plugin from
# Lua through MONGE_PLUGIN_PATH.
set(_ex_build "${CMAKE_CURRENT_BINARY_DIR}/example_custom_operator")
set(_ex_options -DMonge_DIR=${CMAKE_BINARY_DIR}/cmake -DCMAKE_BUILD_TYPE=Release)
if(CMAKE_CXX_COMPILER_LAUNCHER)
  list(JOIN CMAKE_CXX_COMPILER_LAUNCHER "\;" _launcher)
  list(APPEND _ex_options "-DCMAKE_CXX_COMPILER_LAUNCHER=${_launcher}")
endif()
add_test(NAME example.custom_operator.build
  COMMAND ${CMAKE_CTEST_COMMAND} --build-and-test "${PROJECT_SOURCE_DIR}/examples/custom_operator" "${_ex_build}"
          --build-generator "${CMAKE_GENERATOR}" --build-noclean --build-options ${_ex_options})
set_tests_properties(example.custom_operator.build PROPERTIES FIXTURES_SETUP custom_operator TIMEOUT 600)

add_test(NAME example.custom_operator.twin
  COMMAND monge run "${CMAKE_CURRENT_SOURCE_DIR}/example/custom_operator_test.lua")
add_test(NAME example.custom_operator.readme
  COMMAND monge run "${PROJECT_SOURCE_DIR}/examples/custom_operator/use_gamma_curve.lua")
add_cli_test(example_describe 0 MATCH "^gamma_curve 1\\.0\\.0 \\(operator\\)" "gamma +\\(number in \\[0\\.1, 10\\], default 2\\.2\\)"
  COMMAND $<TARGET_FILE:monge> --plugin-path "${_ex_build}" plugins --describe gamma_curve)
foreach(_t example.custom_operator.twin example.custom_operator.readme cli.example_describe)
  set_tests_properties(${_t} PROPERTIES FIXTURES_REQUIRED custom_operator ENVIRONMENT "MONGE_PLUGIN_PATH=${_ex_build}")
endforeach()

# The quickstart, shortened to 12 iterations: trains, prints PSNR/SSIM, writes the grid and the
# report; then the reuse mode loads the map instead of training.
set(_qs "${CMAKE_CURRENT_BINARY_DIR}/quickstart")
add_cli_test(example_quickstart 0
  MATCH "trained 12 iterations" "PSNR on 1000 test images: degraded 1[0-9]\\.[0-9]+ dB, Wiener 1[0-9]\\.[0-9]+ dB, restored [0-9.]+ dB"
        "SSIM on 1000 test images: degraded 0\\.[0-9]+" "at --strength 0\\.5: PSNR [0-9.]+ dB"
        "wrote .*quickstart/grid\\.png" "wrote .*quickstart/report\\.html"
  COMMAND $<TARGET_FILE:monge> --threads 2 run "${PROJECT_SOURCE_DIR}/examples/quickstart.lua" "${_qs}" 12)
add_cli_test(example_quickstart_reuse 0 MATCH "reusing .*quickstart/map\\.pt" "PSNR on 1000 test images"
  COMMAND $<TARGET_FILE:monge> run "${PROJECT_SOURCE_DIR}/examples/quickstart.lua" "${_qs}" 12 reuse)
set_tests_properties(cli.example_quickstart_reuse PROPERTIES DEPENDS cli.example_quickstart)
# The quickstart's map carries its Wiener lift, in the data-only map format 3.
add_cli_test(example_quickstart_info 0 MATCH "map format 3: data only" "with the Wiener lift"
  COMMAND $<TARGET_FILE:monge> info "${_qs}/map.pt")
set_tests_properties(cli.example_quickstart_info PROPERTIES DEPENDS cli.example_quickstart)
