// The launch environment of data-parallel training: torchrun's and Slurm's variables.
#include <cstdlib>
#include <initializer_list>
#include <utility>
#include <string>

#include <gtest/gtest.h>

#include "host/train/distributed.hpp"
#include "monge/plugin.hpp"

using monge::host::dist_env;
using monge::host::first_slurm_host;

namespace {

// Clears every variable dist_env() reads, and restores nothing: each test case is its own process.
void clear_env() {
  for (const char* v : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_STEP_NUM_TASKS",
                        "SLURM_PROCID", "SLURM_LOCALID", "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_JOB_ID",
                        "MONGE_STORE_FILE"})
    unsetenv(v);
}

// Sets environment variables, name then value.
void set_env(std::initializer_list<std::pair<const char*, const char*>> vars) {
  for (const auto& [name, value] : vars) setenv(name, value, 1);
}

std::string error_of(void (*f)()) {
  try {
    f();
  } catch (const monge::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(DistEnv, SingleProcessByDefault) {
  clear_env();
  const auto e = dist_env();
  EXPECT_EQ(e.world, 1);
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.source, "");
}

TEST(DistEnv, Torchrun) {
  clear_env();
  set_env({{"WORLD_SIZE", "4"}, {"RANK", "3"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"},
           {"MASTER_PORT", "29600"}});
  const auto e = dist_env();
  EXPECT_EQ(e.source, "torchrun");
  EXPECT_EQ(e.world, 4);
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "node7");
  EXPECT_EQ(e.master_port, 29600);
}

TEST(DistEnv, TorchrunTakesPrecedenceOverSlurm) {
  clear_env();
  set_env({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_PROCID", "5"}});
  const auto e = dist_env();
  EXPECT_EQ(e.world, 2);
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.master_addr, "127.0.0.1");
  EXPECT_EQ(e.master_port, 29500);
}

TEST(DistEnv, SlurmStep) {
  clear_env();
  set_env({{"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_PROCID", "5"}, {"SLURM_LOCALID", "1"},
           {"SLURM_STEP_NODELIST", "gpu[012-015,020],login1"}, {"SLURM_JOB_ID", "123456"}});
  const auto e = dist_env();
  EXPECT_EQ(e.source, "slurm");
  EXPECT_EQ(e.world, 8);
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "gpu012");
  EXPECT_EQ(e.master_port, 20000 + 123456 % 20000);
  setenv("MASTER_PORT", "31000", 1);
  EXPECT_EQ(dist_env().master_port, 31000);
}

TEST(DistEnv, SlurmBatchStepWithOneTaskIsSingleProcess) {
  clear_env();
  // The batch script itself (no srun): one task, even in an allocation of many.
  set_env({{"SLURM_STEP_NUM_TASKS", "1"}, {"SLURM_PROCID", "0"}, {"SLURM_JOB_NODELIST", "node[1-4]"}});
  EXPECT_EQ(dist_env().world, 1);
}

TEST(DistEnv, BadValuesAreClearErrors) {
  clear_env();
  setenv("WORLD_SIZE", "2", 1);
  EXPECT_NE(error_of([] { dist_env(); }).find("WORLD_SIZE is set but RANK is not"), std::string::npos);
  setenv("RANK", "2", 1);
  EXPECT_NE(error_of([] { dist_env(); }).find("RANK must be an integer in [0, 1], got '2'"), std::string::npos);
  set_env({{"RANK", "1"}, {"MASTER_PORT", "http"}});
  EXPECT_NE(error_of([] { dist_env(); }).find("MASTER_PORT must be an integer in [1, 65535], got 'http'"),
            std::string::npos);
}

TEST(DistEnv, FirstSlurmHost) {
  EXPECT_EQ(first_slurm_host("node07"), "node07");
  EXPECT_EQ(first_slurm_host("node[07-09,12]"), "node07");
  EXPECT_EQ(first_slurm_host("node[12,07-09]"), "node12");
  EXPECT_EQ(first_slurm_host("a1,b[2-3]"), "a1");
  EXPECT_EQ(first_slurm_host("rack[1-2]-node[3-4]"), "rack1-node[3-4]");
  EXPECT_THROW(first_slurm_host("node[07-09"), monge::Error);
}
