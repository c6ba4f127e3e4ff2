// The queue listing of mailq and sendmail -bp.
#pragma once
#include <cstdio>

#include "instance.hpp"

namespace yubin {
// Prints every message in queue/new and queue/cur; returns a sysexit code.
int print_queue(const Instance& inst, std::FILE* out);
}
