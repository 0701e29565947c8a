# CLI checks: add_cli_test(name exit_code regex... COMMAND args...)
function(add_cli_test name code)
  cmake_parse_arguments(ARG "" "" "COMMAND;MATCH" ${ARGN})
  add_test(NAME cli.${name}
           COMMAND "${CMAKE_CURRENT_SOURCE_DIR}/cli/expect.sh" ${code} ${ARG_MATCH} -- ${ARG_COMMAND}
           WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}/cli")
  set_tests_properties(cli.${name} PROPERTIES ENVIRONMENT "MONGE_PLUGIN_PATH=")
endfunction()

set(_m $<TARGET_FILE:monge>)
add_cli_test(version 0 MATCH "^monge 0\\.1\\.0" "plugin SDK 7\\.[0-9]+" "LibTorch 1\\.13" COMMAND ${_m} --version)
add_cli_test(help 0 MATCH "Usage:" "monge .*run SCRIPT" "Exit codes:" "MONGE_PLUGIN_PATH" COMMAND ${_m} --help)
# The command list of --help, `monge help NAME` and "did you mean" come from one table
# (host/cli/commands.cpp): every command is listed, and `monge help NAME` is `monge NAME --help`.
add_cli_test(help_lists_commands 0
  MATCH "^  monge \\[OPTIONS\\] run SCRIPT\\.lua \\[ARGS\\.\\.\\.\\] +run a Lua pipeline" "^  monge \\[OPTIONS\\] plugins --describe NAME +show"
        "^  monge \\[OPTIONS\\] info MAP" "^  monge \\[OPTIONS\\] map upgrade OLD NEW --trust-code$" "^  monge \\[OPTIONS\\] apply MAP IN OUT"
        "^  monge \\[OPTIONS\\] batch MAP INPUT\\.\\.\\." "^  monge \\[OPTIONS\\] bench " "^  monge \\[OPTIONS\\] eval MAP"
        "^  monge \\[OPTIONS\\] calibrate --clean" "^  monge --version +print versions" "^  monge help --markdown "
        "^ {46}data-only format 3"
  COMMAND ${_m} --help)
add_test(NAME cli.help_docs COMMAND "${CMAKE_CURRENT_SOURCE_DIR}/cli/help_docs.sh" ${_m} "${PROJECT_SOURCE_DIR}/docs/cli.md")
add_cli_test(help_topic 0 MATCH "^Usage: monge info MAP \\[--trust-code\\]" COMMAND ${_m} help info)
add_cli_test(help_topic_run 0 MATCH "^Usage: monge run .*--nproc N" COMMAND ${_m} help run)
add_cli_test(help_topic_apply 0 MATCH "^Usage: monge apply MAP INPUT OUTPUT" "^  --max-pixels N" COMMAND ${_m} help apply)
add_cli_test(help_unknown_topic 0 MATCH "^Usage:$" "^Exit codes:$" COMMAND ${_m} help nonsense)
add_cli_test(help_markdown 0 MATCH "^\\| option \\| Lua key \\| values \\| default \\| meaning \\|$" "^\\| `--out DIR` \\| `out` \\|"
  COMMAND ${_m} help --markdown batch)
add_cli_test(unknown_command_far 2 MATCH "^monge: unknown command 'frobnicate'$" COMMAND ${_m} frobnicate)
add_cli_test(version_command 0 MATCH "^monge 0\\.1\\.0" COMMAND ${_m} version)
add_cli_test(run_help 0 MATCH "arg\\[1\\.\\.n\\]" COMMAND ${_m} run --help)
add_cli_test(run_nproc_help 0 MATCH "--nproc N" "--max-restarts K" COMMAND ${_m} run --help)
add_cli_test(run_nproc_zero 2 MATCH "run: --nproc needs a number of processes \\(1 to 1024\\), got '0'"
             COMMAND ${_m} run --nproc 0 args.lua)
add_cli_test(run_nproc_no_script 2 MATCH "run: give a script after the options" COMMAND ${_m} run --nproc 2)
add_cli_test(run_nproc_failing_rank 7 MATCH "monge run: rank 1 of 2 exited with code 7"
             COMMAND ${_m} --threads 1 run --nproc 2 -e "os.exit(tonumber(os.getenv('RANK')) == 1 and 7 or 0)")
add_cli_test(run_nproc_ranks 0 MATCH "rank 0 of 2, local 0" "rank 1 of 2, local 1"
             COMMAND ${_m} --threads 1 run --nproc 2 -e "local m = require 'monge' print(string.format('rank %d of %d, local %d', m.rank(), m.world_size(), m.local_rank()))")
add_cli_test(no_command 2 MATCH "Usage:" COMMAND ${_m})
add_cli_test(unknown_command 2 MATCH "unknown command 'plugns' \\(did you mean 'plugins'\\?\\)" COMMAND ${_m} plugns)
add_cli_test(unknown_option 2 MATCH "unknown option '--frob'" COMMAND ${_m} --frob run x.lua)
add_cli_test(bad_threads 2 MATCH "--threads needs a positive integer" COMMAND ${_m} --threads zero run x.lua)
add_cli_test(plugins_list 0
  MATCH "^operator$" "^  downsample +1\\.0\\.0" "^  gaussian_blur +1\\.0\\.0" "^  hdr_clip" "^  identity"
        "^noise$" "^  gaussian +1\\.0\\.0" "lib/monge/plugins/gaussian_blur\\.monge\\.so"
        "^metric$" "^  psnr +1\\.0\\.0" "^  ssim +1\\.0\\.0"
  COMMAND ${_m} plugins)
add_cli_test(plugins_kind 0 MATCH "^noise$" "^  gaussian " COMMAND ${_m} plugins --kind noise)
add_cli_test(describe 0
  MATCH "^gaussian_blur 1\\.0\\.0 \\(operator\\)" "sigma +\\(number in \\[0\\.01, 100\\], default 1\\.5\\)"
        "size +\\(integer in \\[1, 101\\], default 13\\)" "padding +\\(choice: reflect\\|replicate\\|zeros\\|circular, default \"reflect\"\\)"
        "built for: SDK 7\\.[0-9]+, LibTorch 1\\.13"
  COMMAND ${_m} plugins --describe gaussian_blur)
add_cli_test(describe_unknown 3 MATCH "unknown plugin 'gausian_blur' \\(did you mean 'gaussian_blur'\\?\\)"
  COMMAND ${_m} plugins --describe gausian_blur)
add_cli_test(misspelled_param 1
  MATCH "misspelled\\.lua:3:" "unknown parameter 'sigmma' \\(did you mean 'sigma'\\?\\)" "stack traceback"
  COMMAND ${_m} run misspelled.lua)
add_cli_test(script_args 0 MATCH "arg0=args\\.lua" "arg1=first" "arg2=second" "varargs=first,second" "n=2"
  COMMAND ${_m} run args.lua first second)
add_cli_test(uncaught_error 1 MATCH "uncaught\\.lua:2: deliberate failure" "stack traceback" "in function 'outer'"
  COMMAND ${_m} run uncaught.lua)
add_cli_test(cpp_error 1 MATCH "cpp_error\\.lua:4: .*downsample.*(divisible|multiple)" COMMAND ${_m} run cpp_error.lua)
add_cli_test(missing_script 2 MATCH "cannot open script 'nope\\.lua'" COMMAND ${_m} run nope.lua)
add_cli_test(syntax_error 1 MATCH "line 1|:1:" COMMAND ${_m} run -e "local = 1")
add_cli_test(eval 0 MATCH "^42$" COMMAND ${_m} run -e "print(require('monge').version and 42)")
# A plugin built for another SDK major: skipped with a warning naming the file and both versions;
# asking for it is an error repeating why.
add_cli_test(bad_sdk_warning 0 MATCH "warning: skipped .*bad_sdk/future_op\\.monge\\.so: built for monge SDK 99\\.[0-9]+, but this monge provides SDK 7\\.[0-9]+"
  COMMAND ${_m} --plugin-path "${MONGE_FIXTURE_DIR}/bad_sdk" plugins)
add_cli_test(bad_sdk_use 1 MATCH "plugin 'future_op' cannot be used: .*future_op\\.monge\\.so: built for monge SDK 99\\.[0-9]+, but this monge provides SDK 7\\.[0-9]+"
  COMMAND ${_m} -q --plugin-path "${MONGE_FIXTURE_DIR}/bad_sdk" run -e "require('monge').operator('future_op')")
add_cli_test(bad_sdk_describe 3 MATCH "SDK 99\\.[0-9]+" COMMAND ${_m} -q --plugin-path "${MONGE_FIXTURE_DIR}/bad_sdk" plugins --describe future_op)
add_cli_test(duplicate_name 1 MATCH "plugin 'identity' is provided by two files: .*identity\\.monge\\.so and .*identity_copy\\.monge\\.so"
  COMMAND ${_m} -q --plugin-path "${MONGE_FIXTURE_DIR}/duplicate" run -e "require('monge').operator('identity')")

# `cmake --install` lays out a working tree: the installed host finds installed plugins and Lua
# modules, and the SDK package is there for out-of-tree plugins.
set(_prefix "${CMAKE_CURRENT_BINARY_DIR}/install-test")
add_test(NAME install.run COMMAND ${CMAKE_COMMAND} --install "${CMAKE_BINARY_DIR}" --prefix "${_prefix}")
set_tests_properties(install.run PROPERTIES FIXTURES_SETUP installed)
add_cli_test(installed_plugins 0 MATCH "^  gaussian_blur " "install-test/lib/monge/plugins/gaussian_blur\\.monge\\.so"
  COMMAND "${_prefix}/bin/monge" plugins)
add_cli_test(installed_lua 0 MATCH "^ok gaussian$"
  COMMAND "${_prefix}/bin/monge" run -e "local m = require 'monge' assert(m.data.fashion_mnist) print('ok ' .. m.noise('gaussian').name)")
add_cli_test(installed_sdk 0 MATCH "MongeConfig\\.cmake" "MongeAddPlugin\\.cmake" "monge/export\\.hpp" "monge/operator\\.hpp"
  COMMAND find "${_prefix}/lib/cmake/Monge" "${_prefix}/include/monge")
add_cli_test(installed_bench 0 MATCH "^  train-step " COMMAND "${_prefix}/bin/monge" bench)
set_tests_properties(cli.installed_plugins cli.installed_lua cli.installed_sdk cli.installed_bench
                     PROPERTIES FIXTURES_REQUIRED installed)
# --plugin-path also takes a single plugin file; a stale file met while scanning warns before a run.
add_cli_test(plugin_path_file 3 MATCH "plugin 'identity' is provided by two files: .*identity\\.monge\\.so and .*duplicate/identity_copy\\.monge\\.so"
  COMMAND ${_m} --plugin-path "${MONGE_FIXTURE_DIR}/duplicate/identity_copy.monge.so" run -e "print('not reached')")
add_cli_test(run_warns_about_stale_plugins 0 MATCH "warning: skipped .*future_op\\.monge\\.so: built for monge SDK 99\\.[0-9]+" "^done$"
  COMMAND ${_m} --plugin-path "${MONGE_FIXTURE_DIR}/bad_sdk" run -e "print('done')")
# `monge info` on the map written by lua.train_test.
add_cli_test(info 0 MATCH "network unet [0-9]+\\.[0-9.]+ \\([0-9]+ parameters\\) activation=\"silu\" channels=4 depth=1" "operator gaussian_blur [0-9]+\\.[0-9.]+ .*sigma=1 size=5"
  "solver uotip" "psnr [0-9.]+" COMMAND ${_m} info "${CMAKE_CURRENT_BINARY_DIR}/train_test/straight/map.pt")
add_cli_test(info_missing 1 MATCH "nope\\.pt: no such map file" COMMAND ${_m} info nope.pt)
set_tests_properties(cli.info PROPERTIES DEPENDS lua.train_test)

# `monge apply` with that map on measurements lua.train_test saved; then the errors a user meets.
set(_map "${CMAKE_CURRENT_BINARY_DIR}/train_test/straight/map.pt")
set(_grid "${CMAKE_CURRENT_BINARY_DIR}/train_test/measured.png")
add_cli_test(apply 0 MATCH "apply: .*measured\\.png \\([0-9]+x[0-9]+\\) -> .*applied\\.png .* s on cpu, (fp32|bf16) \\(auto\\)( channels-last)?, .* MPix/s, peak RSS [0-9]+ MiB; exact tiles with halo 12"
  COMMAND ${_m} apply ${_map} ${_grid} "${CMAKE_CURRENT_BINARY_DIR}/applied.png" --device cpu)
set_tests_properties(cli.apply PROPERTIES DEPENDS lua.train_test)
# --precision: a bad name is a usage error; with oneDNN held below AVX-512 (no bf16 convolutions on
# any CPU) auto runs fp32 and says so, and bf16 is refused naming why.
add_cli_test(apply_bad_precision 2 MATCH "apply: --precision expects one of auto\\|fp32\\|bf16, got \"fp16\" \\(did you mean 'fp32'\\?\\)"
  COMMAND ${_m} apply a.pt b.png c.png --precision fp16)
add_cli_test(apply_bad_layout 2 MATCH "apply: --layout expects one of auto\\|nchw\\|channels-last, got \"nhwc\""
  COMMAND ${_m} apply a.pt b.png c.png --layout nhwc)
# --layout channels-last in fp32: the last line says so.
add_cli_test(apply_channels_last 0 MATCH "fp32 channels-last, "
  COMMAND ${_m} apply ${_map} ${_grid} "${CMAKE_CURRENT_BINARY_DIR}/channels_last.png" --precision fp32 --layout channels-last)
add_cli_test(batch_bad_precision 2 MATCH "batch: --precision needs a value: one of auto\\|fp32\\|bf16" COMMAND ${_m} batch a.pt in/ --out x --precision)
add_cli_test(apply_auto_without_bf16 0 MATCH " s on cpu, fp32 \\(auto\\), "
  COMMAND ${_m} apply ${_map} ${_grid} "${CMAKE_CURRENT_BINARY_DIR}/applied_avx2.png" --device cpu)
add_cli_test(apply_bf16_without_bf16 1 MATCH "apply: precision 'bf16' needs bfloat16 convolutions in hardware, .*Use precision 'auto' or 'fp32'"
  COMMAND ${_m} apply ${_map} ${_grid} "${CMAKE_CURRENT_BINARY_DIR}/never_bf16.png" --precision bf16)
set_tests_properties(cli.apply_auto_without_bf16 cli.apply_bf16_without_bf16 PROPERTIES DEPENDS lua.train_test
                     ENVIRONMENT "MONGE_PLUGIN_PATH=;DNNL_MAX_CPU_ISA=AVX2")
# monge info names the lift a map file records: the unpaired Wiener filter or the fitted one.
add_cli_test(info_wiener_lift 0 MATCH "with the Wiener lift \\(noise variance"
  COMMAND ${_m} info "${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/map/unet_wiener_lift.map")
add_cli_test(info_fitted_lift 0 MATCH "with the fitted lift \\(a least-squares filter"
  COMMAND ${_m} info "${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/map/unet_fitted_lift.map")
add_cli_test(apply_same_file 1 MATCH "is the input file; choose another output path"
  COMMAND ${_m} apply ${_map} ${_grid} ${_grid})
set_tests_properties(cli.apply_same_file cli.apply_channels_last PROPERTIES DEPENDS lua.train_test)
add_test(NAME cli.map_upgrade
         COMMAND "${CMAKE_CURRENT_SOURCE_DIR}/cli/map_upgrade.sh" ${_m} ${_map} ${_grid} "${CMAKE_CURRENT_BINARY_DIR}/map_upgrade")
set_tests_properties(cli.map_upgrade PROPERTIES DEPENDS lua.train_test ENVIRONMENT "MONGE_PLUGIN_PATH=")
# `monge calibrate`: blur sigma and noise level within 5% from unpaired sets (simulated and a
# folder of PNG files), the downsampling factor from the sizes, and its errors.
add_test(NAME cli.calibrate COMMAND "${CMAKE_CURRENT_SOURCE_DIR}/cli/calibrate_cli.sh" ${_m} "${CMAKE_CURRENT_BINARY_DIR}/calibrate")
set_tests_properties(cli.calibrate PROPERTIES ENVIRONMENT "MONGE_PLUGIN_PATH=" LABELS stochastic)
add_cli_test(calibrate_help 0 MATCH "Usage: monge calibrate --clean SET --measured SET" "--degrade SPEC" "Exit codes: 0 done"
  COMMAND ${_m} calibrate --help)
add_test(NAME cli.interrupt COMMAND "${CMAKE_CURRENT_SOURCE_DIR}/cli/interrupt.sh" ${_m} ${_map} "${CMAKE_CURRENT_BINARY_DIR}/interrupt")
set_tests_properties(cli.interrupt PROPERTIES DEPENDS lua.train_test ENVIRONMENT "MONGE_PLUGIN_PATH=")
add_cli_test(apply_usage 2 MATCH "apply: give MAP INPUT OUTPUT" COMMAND ${_m} apply only-a-map.pt)
add_cli_test(apply_help 0 MATCH "Usage: monge apply MAP INPUT OUTPUT" "TorchScript" "--tile N" "--max-pixels N" "--precision P"
  COMMAND ${_m} apply --help)
add_cli_test(apply_bad_option 2 MATCH "apply: unknown option '--tiel' \\(did you mean '--tile'\\?\\)"
  COMMAND ${_m} apply a.pt b.png c.png --tiel 64)
add_cli_test(apply_bad_tile 1 MATCH "--tile 101 must be a positive multiple of 2 for this network"
  COMMAND ${_m} apply ${_map} ${_grid} "${CMAKE_CURRENT_BINARY_DIR}/never.png" --tile 101)
set_tests_properties(cli.apply_bad_tile PROPERTIES DEPENDS lua.train_test)
add_cli_test(apply_max_pixels 1 MATCH "pixels is more than --max-pixels 100; raise the limit"
  COMMAND ${_m} apply ${_map} ${_grid} "${CMAKE_CURRENT_BINARY_DIR}/never.png" --max-pixels 100)
set_tests_properties(cli.apply_max_pixels PROPERTIES DEPENDS lua.train_test)

# Stochastic maps (lua.stochastic_apply_test writes an OTP map and a blurred image): K samples as
# K files, their mean with a seed; deterministic maps and bad reductions are refused.
set(_sto "${CMAKE_BINARY_DIR}/tests/stochastic_apply")
add_cli_test(apply_samples_all 0 MATCH "sample 3 of 3 -> .*sampled\\.s3\\.png" "^ok$"
  COMMAND sh -c "rm -f '${_sto}'/sampled.s*.png && '$<TARGET_FILE:monge>' apply '${_sto}/map.pt' '${_sto}/blurred.png' '${_sto}/sampled.png' --samples 3 --reduce all --seed 2 --device cpu && test -s '${_sto}/sampled.s1.png' && test -s '${_sto}/sampled.s2.png' && test ! -e '${_sto}/sampled.s4.png' && echo ok")
add_cli_test(apply_samples_mean 0 MATCH "blurred\\.png \\(56x84\\) -> .*mean\\.png"
  COMMAND ${_m} apply "${_sto}/map.pt" "${_sto}/blurred.png" "${_sto}/mean.png" --samples 4 --seed 1 --device cpu)
add_cli_test(apply_samples_deterministic 1 MATCH "--samples 2 needs a stochastic map \\(trained by not, knot or otp\\); this map is deterministic"
  COMMAND ${_m} apply "${_sto}/deterministic.pt" "${_sto}/blurred.png" "${_sto}/never.png" --samples 2)
add_cli_test(apply_bad_reduce 2 MATCH "apply: --reduce expects one of mean\\|std\\|all, got \"median\""
  COMMAND ${_m} apply a.pt b.png c.png --samples 2 --reduce median)
add_cli_test(batch_reduce_all 2 MATCH "batch: --reduce all writes several files per input"
  COMMAND ${_m} batch a.pt in/ --out x --samples 2 --reduce all)
add_cli_test(info_stochastic 0 MATCH "stochastic: measurements smoothed with N\\(0, 0\\.2\\^2\\) noise at each call" "solver otp"
  COMMAND ${_m} info "${_sto}/map.pt")
set_tests_properties(cli.apply_samples_all cli.apply_samples_mean cli.apply_samples_deterministic cli.info_stochastic
                     PROPERTIES DEPENDS lua.stochastic_apply_test)

# `monge batch`: a run killed with SIGKILL and re-run finishes every file exactly once.
add_test(NAME cli.batch_kill_resume
         COMMAND "${CMAKE_CURRENT_SOURCE_DIR}/cli/expect.sh" 0 "ok: every file restored exactly once"
                 -- "${CMAKE_CURRENT_SOURCE_DIR}/cli/batch_kill.sh" ${_m} ${_map} "${CMAKE_CURRENT_BINARY_DIR}/batch_kill")
set_tests_properties(cli.batch_kill_resume PROPERTIES DEPENDS lua.train_test ENVIRONMENT "MONGE_PLUGIN_PATH=")
# `monge bench`: the list (names with '-', first comment line), help and an unknown name.
add_cli_test(bench_list 0 MATCH "^  train-step +Training-step speed against PyTorch" "^  apply +Streaming apply benchmark"
  COMMAND ${_m} bench)
add_cli_test(bench_help 0 MATCH "Usage: monge bench NAME \\[ARGS\\.\\.\\.\\]" "'-' read as '_'" COMMAND ${_m} bench --help)
add_cli_test(bench_unknown 2 MATCH "bench: unknown benchmark 'train-stp' \\(did you mean 'train-step'\\?\\)"
  COMMAND ${_m} bench train-stp)
# Bad arguments of a benchmark pipeline: clear errors before any work.
add_cli_test(bench_fmnist_ip_bad_precision 1 MATCH "fmnist-ip: --precision must be fp32 or bf16, got 'fp16'"
  COMMAND ${_m} bench fmnist-ip --config tiny --precision fp16)
add_cli_test(bench_fmnist_paper_bad_experiment 1
  MATCH "fmnist-paper: unknown experiment 'multinoise' \\(use multi-noise, imbalance, noise-types, tau-sweep or all\\)"
  COMMAND ${_m} bench fmnist-paper --experiment multinoise --config tiny)
add_cli_test(bench_fmnist_paper_bad_k 1
  MATCH "fmnist-paper: --k takes integers from 1 to 10 \\(the clean set's class 0 : class 1 ratio\\), got '0'"
  COMMAND ${_m} bench fmnist-paper --experiment imbalance --k 1,0 --config tiny)
add_cli_test(bench_fmnist_paper_bad_method 1
  MATCH "fmnist-paper: unknown method 'uotip-match' for the selected experiments \\(tau-sweep: degraded, uotip\\)"
  COMMAND ${_m} bench fmnist-paper --experiment tau-sweep --methods uotip,uotip-match --config tiny)
add_cli_test(batch_help 0 MATCH "Usage: monge batch MAP INPUT... --out DIR" "SLURM_ARRAY_TASK_ID" "\\.tar\\.zst/\\.tzst" "\\.zip"
  "\\(neither is restored\\)" COMMAND ${_m} batch --help)
add_cli_test(batch_no_out 2 MATCH "batch: --out is required \\(string: output folder" COMMAND ${_m} batch a.pt in/)
add_cli_test(batch_bad_shard 1 MATCH "shard 5/2 \\(from --shard\\) is out of range"
  COMMAND ${_m} batch a.pt in/ --out x --shard 5/2)

# `monge eval`: a tiny map and image folders (eval_fixture.lua), then the command on a Fashion-MNIST
# spec (its report is checked in a browser by bench.render_eval_report) and on a folder of degraded
# images with their clean originals; help and errors, each of which must leave nothing behind.
set(_eval "${CMAKE_CURRENT_BINARY_DIR}/eval_cli")
add_cli_test(eval_fixture 0 MATCH "wrote " COMMAND ${_m} run eval_fixture.lua "${_eval}")
add_cli_test(eval_fmnist 0
  MATCH "eval: .*map\\.pt on fashion-mnist:test:40: 40 images, noise gaussian:sigma=0\\.05, seed 3"
        "^  psnr +[0-9.]+ +[0-9.]+ +[-+][0-9.]+$" "^  ssim +0\\.[0-9]+ +0\\.[0-9]+ " "wrote .*results\\.json, .*grid\\.png, .*report\\.html"
        "eval: 40/40 images \\(100%\\), [0-9.]+ images/s"
  COMMAND ${_m} eval "${_eval}/map.pt" --data fashion-mnist:test:40 --noise gaussian:sigma=0.05 --seed 3 --batch 16
          --grid 6 --out "${_eval}/fmnist")
add_cli_test(eval_folder 0 MATCH "on .*degraded \\(reference .*clean\\): 6 images, [0-9.]+ s" "^  psnr " "wrote .*report\\.html"
  COMMAND ${_m} -q eval "${_eval}/map.pt" --data "${_eval}/degraded" --reference "${_eval}/clean" --metrics psnr --out "${_eval}/folder")
add_cli_test(eval_help 0 MATCH "Usage: monge eval MAP --data SPEC --out DIR" "fashion-mnist:test\\[:N\\]" "--reference"
  COMMAND ${_m} eval --help)
add_cli_test(eval_unknown_option 2 MATCH "eval: unknown option '--metric' \\(did you mean '--metrics'\\?\\)"
  COMMAND ${_m} eval map.pt --data fashion-mnist:test --out x --metric psnr)
# eval's flags are declared once (host/lua/script_options.cpp) and parsed from that declaration:
# a misspelt flag gets the nearest one, a value of the wrong type is refused naming the flag and
# what it takes (exit 2, before any file is read); --help lists the declared options.
add_cli_test(eval_misspelt_flag 2 MATCH "^monge: eval: unknown option '--nosie' \\(did you mean '--noise'\\?\\)$"
  "^Run 'monge eval --help' for usage\\.$"
  COMMAND ${_m} eval map.pt --data fashion-mnist:test --out x --nosie none)
add_cli_test(eval_bad_value 2 MATCH "^monge: eval: --grid expects an integer in \\[0, [0-9]+\\], got 'many'$"
  COMMAND ${_m} eval map.pt --data fashion-mnist:test --out x --grid many)
add_cli_test(eval_missing_value 2 MATCH "^monge: eval: --seed needs a value: an integer in \\[0, [0-9]+\\]$"
  COMMAND ${_m} eval map.pt --data fashion-mnist:test --out x --seed)
add_cli_test(eval_help_options 0 MATCH "^  --grid K +images in grid\\.png" "^  --no-progress +no progress lines" "^  --trust-code "
  COMMAND ${_m} eval --help)
add_cli_test(help_markdown_lua 0 MATCH "^\\| Lua key \\| values \\| default \\| meaning \\|$" "^\\| `eps` \\| number \\| 0\\.05 \\|"
  COMMAND ${_m} help --markdown monge.ot.sinkhorn)
add_cli_test(eval_recorded_noise 0 MATCH "on fashion-mnist:test:12: 12 images, noise gaussian:sigma=0\\.05, seed 0"
  COMMAND ${_m} -q eval "${_eval}/map.pt" --data fashion-mnist:test:12 --metrics psnr --out "${_eval}/recorded")
add_cli_test(info_noise 0 MATCH "trained with noise gaussian:sigma=0\\.05 \\(monge eval's default --noise\\)"
  COMMAND ${_m} info "${_eval}/map.pt")
set_tests_properties(cli.eval_recorded_noise cli.info_noise PROPERTIES FIXTURES_REQUIRED eval_fixture)
# A TorchScript module as the map (a fixture of the FID tests) records no noise: --noise is needed.
add_cli_test(eval_needs_noise 2 MATCH "--noise is required with a clean test set: .*fid_pool32\\.pt does not record the noise"
  COMMAND ${_m} eval "${PROJECT_SOURCE_DIR}/tests/fixtures/metrics/fid_pool32.pt" --data fashion-mnist:test:8 --out x --trust-code)
# Without --trust-code a TorchScript module (a program) is not read, by eval, info or apply.
add_cli_test(eval_untrusted_program 1 MATCH "fid_pool32\\.pt: not a data-only monge map .*PyTorch archive.*--trust-code"
  COMMAND ${_m} eval "${PROJECT_SOURCE_DIR}/tests/fixtures/metrics/fid_pool32.pt" --data fashion-mnist:test:8 --noise none --out x)
add_cli_test(info_untrusted_program 1 MATCH "fid_pool32\\.pt: not a data-only monge map .*monge map upgrade"
  COMMAND ${_m} info "${PROJECT_SOURCE_DIR}/tests/fixtures/metrics/fid_pool32.pt")
add_cli_test(info_trusted_program 0 MATCH "map format 0: none, a TorchScript module \\(a program\\), read because of --trust-code"
  COMMAND ${_m} info "${PROJECT_SOURCE_DIR}/tests/fixtures/metrics/fid_pool32.pt" --trust-code)
add_cli_test(map_upgrade_needs_trust 2 MATCH "map upgrade: reading old\\.pt runs the program stored in it; add --trust-code"
  COMMAND ${_m} map upgrade old.pt new.pt)
add_cli_test(map_upgrade_torchscript 1 MATCH "a TorchScript module is a program and cannot be converted"
  COMMAND ${_m} map upgrade "${PROJECT_SOURCE_DIR}/tests/fixtures/metrics/fid_pool32.pt" "${CMAKE_CURRENT_BINARY_DIR}/never.pt" --trust-code)
add_cli_test(eval_bad_spec 2 MATCH "--data 'mnist:test': expected fashion-mnist:test\\[:N\\]"
  COMMAND ${_m} eval map.pt --data mnist:test --noise none --out x)
add_cli_test(eval_noise_with_reference 2 MATCH "--noise and --seed degrade clean images"
  COMMAND ${_m} eval map.pt --data "${_eval}/degraded" --reference "${_eval}/clean" --noise none --out x)
# Errors found while running: exit code 1, a clear message, no output folder.
function(add_eval_error_test name regex)
  add_cli_test(${name} 1 MATCH "${regex}" "^nothing written$"
    COMMAND "${CMAKE_CURRENT_SOURCE_DIR}/cli/no_output.sh" "${_eval}/error.out" ${_m} eval ${ARGN} --out "${_eval}/error.out")
  set_tests_properties(cli.${name} PROPERTIES FIXTURES_REQUIRED eval_fixture)
endfunction()
add_eval_error_test(eval_missing_map "monge: error: eval: .*nope\\.pt: no such map file"
  "${_eval}/nope.pt" --data fashion-mnist:test:8 --noise none)
add_eval_error_test(eval_unknown_metric "monge: error: eval: metric 'psnrr': unknown plugin 'psnrr' \\(did you mean 'psnr'\\?\\)"
  "${_eval}/map.pt" --data fashion-mnist:test:8 --noise none --metrics ssim,psnrr)
add_eval_error_test(eval_wrong_size "lifted by the map's operator \\(gaussian_blur\\) are 6 x 1 x 14 x 14, the clean images 6 x 1 x 28 x 28"
  "${_eval}/map.pt" --data "${_eval}/small" --reference "${_eval}/clean")
add_eval_error_test(eval_empty "images: no images in .*empty"
  "${_eval}/map.pt" --data "folder:${_eval}/empty" --noise none)
add_eval_error_test(eval_unmatched "6 degraded image\\(s\\) have no clean original of the same name in .*other: img01\\.png, img02\\.png"
  "${_eval}/map.pt" --data "${_eval}/degraded" --reference "${_eval}/other")
set_tests_properties(cli.eval_fixture PROPERTIES FIXTURES_SETUP eval_fixture)
set_tests_properties(cli.eval_fmnist cli.eval_folder cli.eval_noise_with_reference PROPERTIES FIXTURES_REQUIRED eval_fixture)
set_tests_properties(cli.eval_fmnist PROPERTIES FIXTURES_SETUP eval_report)
