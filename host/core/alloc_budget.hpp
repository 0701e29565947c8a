#pragma once
// A bound on what LibTorch allocates on the CPU, for building something a file only describes.
//
// A map file's header names a network and its parameters; building that network allocates its
// weights before a single one is read from the file. A 12 KB file declaring the widest unet would
// make the host allocate (and randomly initialise) more than a gigabyte before finding that the
// file holds none of those weights. Under an AllocationBudget, the build is refused at the first
// allocation that would pass the bound: the cost of a lie in a header is bounded by the bytes the
// file really holds.

#include <cstdint>
#include <string>

namespace monge::host {

/// While it lives, LibTorch's CPU allocations made by this thread that would take the total past
/// `bytes` throw monge::Error("`what`: ..."). Budgets do not nest; other threads are not affected.
class AllocationBudget {
 public:
  AllocationBudget(uint64_t bytes, std::string what);
  ~AllocationBudget();
  AllocationBudget(const AllocationBudget&) = delete;
  AllocationBudget& operator=(const AllocationBudget&) = delete;
  /// Bytes allocated under this budget so far (frees are not subtracted).
  uint64_t used() const;
};

}  // namespace monge::host
