// Stand-in for Gloo's header (see actors/gloo_headers/README.md).
#pragma once
#include "gloo/context.h"
