// Constant databases in D. J. Bernstein's cdb format
// (https://cr.yp.to/cdb/cdb.txt): one file, written once, read with a few
// preads per lookup. yubin-newaliases writes control/aliases.cdb with it.
//
// Layout: 256 (position, length) pairs of little-endian 32-bit numbers
// (2048 bytes) pointing at hash tables; the records (key length, data
// length, key, data); then the tables of (hash, record position) slots.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace yubin {

// The cdb hash: h = 5381; h = ((h << 5) + h) ^ c for each octet.
uint32_t cdb_hash(std::string_view key);

// The whole file for these records, in order. Keys may repeat (a lookup
// finds the first). Throws std::length_error past 4 GiB.
std::string cdb_build(const std::vector<std::pair<std::string, std::string>>& records);

// The data of the first record with this key in the cdb file at path;
// nullopt if there is none or the file does not exist. Throws SysError on
// another read error, and std::runtime_error if the file is malformed.
std::optional<std::string> cdb_find(const std::string& path, std::string_view key);

// The same lookup in a cdb held in memory (for tests and small files).
std::optional<std::string> cdb_find_in(std::string_view cdb, std::string_view key);

}  // namespace yubin
