#include "tools/smoke/add.h"

long smoke_add(long a, long b) { return a + b; }
