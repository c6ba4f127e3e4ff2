// mailq: the queue listing (sendmail -bp). See mailq(8).
#include <cstdio>

#include "exitcodes.hpp"
#include "instance.hpp"
#include "listing.hpp"

int main() {
    try {
        return yubin::print_queue(yubin::Instance::of_this_program(), stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mailq: %s\n", e.what());
        return yubin::sysexit::config;
    }
}
