#pragma once
// Tensors as Lua userdata ("monge.Tensor").

#include <ATen/core/Tensor.h>
#include <lua.hpp>

namespace monge::lua {

/// Adds the tensor constructors and functions (monge.tensor, monge.zeros, ...) to the module
/// table at the top of the stack and creates the "monge.Tensor" metatable.
void open_tensor(lua_State* L);

/// Pushes a tensor as a new userdata.
void push_tensor(lua_State* L, at::Tensor t);

/// The tensor at `index`; raises a Lua error naming the argument if it is not one.
at::Tensor& check_tensor(lua_State* L, int index);

/// The tensor at `index`, or nullptr if the value there is not a tensor.
at::Tensor* test_tensor(lua_State* L, int index);

/// Field `key` of the table at `index` as a tensor: undefined when absent or nil (an error naming
/// `who` and the key when `required`), an error naming them when it holds anything else.
at::Tensor tensor_field(lua_State* L, int index, const char* key, const char* who, bool required = false);

/// The value at `index` as a tensor: a tensor itself, a number (0-dim float tensor) or a nested
/// table of numbers. Throws std::runtime_error otherwise.
at::Tensor to_tensor(lua_State* L, int index);

}  // namespace monge::lua
