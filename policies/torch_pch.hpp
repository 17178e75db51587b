// The precompiled header of every target that uses LibTorch (cmake/TroupeTorch.cmake).
// Nothing else belongs here: a header that declares a protocol or a plain interface
// must not pull torch in (STYLE.md).
#pragma once

#include <torch/torch.h>
