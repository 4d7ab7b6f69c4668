// SPDX-License-Identifier: MIT OR Apache-2.0
// Helpers shared by the memory tests: unique temporary names (tests/helpers/child_process.h).
#pragma once

#include "child_process.h"
