#include "host/core/alloc_budget.hpp"

#include <mutex>

#include <c10/core/CPUAllocator.h>

#include "monge/plugin.hpp"

namespace monge::host {
namespace {

struct Budget {
  bool active = false;
  uint64_t limit = 0, used = 0;
  std::string what;
};
thread_local Budget budget;

std::string mib(uint64_t bytes) { return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB"; }

// LibTorch's CPU allocator with a check in front: installed once, at a higher priority than the
// default, it hands every allocation (and every deleter) to the allocator it replaced.
class BudgetedAllocator final : public c10::Allocator {
 public:
  explicit BudgetedAllocator(c10::Allocator* base) : base_(base) {}
  c10::DataPtr allocate(size_t n) const override {
    Budget& b = budget;
    if (b.active) {
      if (b.used + n > b.limit)
        throw Error(b.what + ": building it needs more than " + mib(b.limit) + " (an allocation of " + mib(n) +
                    " after " + mib(b.used) + ")");
      b.used += n;
    }
    return base_->allocate(n);
  }
  c10::DeleterFnPtr raw_deleter() const override { return base_->raw_deleter(); }

 private:
  c10::Allocator* base_;
};

void install() {
  static std::once_flag once;
  std::call_once(once, [] {
    static BudgetedAllocator allocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(&allocator, /*priority=*/100);
  });
}

}  // namespace

AllocationBudget::AllocationBudget(uint64_t bytes, std::string what) {
  install();
  budget = Budget{true, bytes, 0, std::move(what)};
}

AllocationBudget::~AllocationBudget() { budget = Budget{}; }

uint64_t AllocationBudget::used() const { return budget.used; }

}  // namespace monge::host
