// Stand-in for Gloo's header (see weights/gloo_headers/README.md).
#pragma once
#include "gloo/context.h"
