#include "cdb.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <functional>
#include <stdexcept>

#include "io.hpp"

namespace yubin {

namespace {

constexpr uint32_t header_size = 2048;

void put32(std::string& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

void set32(std::string& out, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) out[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t get32(std::string_view s, size_t at) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
    return v;
}

uint32_t checked32(size_t v) {
    if (v > 0xffffffffu) throw std::length_error("cdb: file would exceed 4 GiB");
    return static_cast<uint32_t>(v);
}

// Reads exactly len bytes at pos; throws std::runtime_error past the end.
using ReadAt = std::function<std::string(uint32_t pos, uint32_t len)>;

std::optional<std::string> find(const ReadAt& read_at, std::string_view key) {
    const uint32_t h = cdb_hash(key);
    const std::string head = read_at((h & 255) * 8, 8);
    const uint32_t table = get32(head, 0), slots = get32(head, 4);
    if (slots == 0) return std::nullopt;
    uint32_t slot = (h >> 8) % slots;
    for (uint32_t tried = 0; tried < slots; ++tried) {
        const std::string s = read_at(table + slot * 8, 8);
        const uint32_t sh = get32(s, 0), pos = get32(s, 4);
        if (pos == 0) return std::nullopt;
        if (sh == h) {
            const std::string rec = read_at(pos, 8);
            const uint32_t klen = get32(rec, 0), dlen = get32(rec, 4);
            if (klen == key.size() && read_at(pos + 8, klen) == key) return read_at(pos + 8 + klen, dlen);
        }
        if (++slot == slots) slot = 0;
    }
    return std::nullopt;
}

}  // namespace

uint32_t cdb_hash(std::string_view key) {
    uint32_t h = 5381;
    for (char c : key) h = ((h << 5) + h) ^ static_cast<unsigned char>(c);
    return h;
}

std::string cdb_build(const std::vector<std::pair<std::string, std::string>>& records) {
    std::string out(header_size, '\0');
    struct Entry {
        uint32_t hash, pos;
    };
    std::vector<std::vector<Entry>> buckets(256);
    for (const auto& [key, data] : records) {
        const uint32_t pos = checked32(out.size());
        put32(out, checked32(key.size()));
        put32(out, checked32(data.size()));
        out += key;
        out += data;
        const uint32_t h = cdb_hash(key);
        buckets[h & 255].push_back({h, pos});
    }
    for (size_t i = 0; i < 256; ++i) {
        const auto& b = buckets[i];
        const uint32_t slots = checked32(b.size() * 2);
        const uint32_t table = checked32(out.size());
        set32(out, i * 8, table);
        set32(out, i * 8 + 4, slots);
        if (slots == 0) continue;
        std::vector<Entry> t(slots, Entry{0, 0});
        for (const Entry& e : b) {
            uint32_t s = (e.hash >> 8) % slots;
            while (t[s].pos != 0) s = (s + 1) % slots;
            t[s] = e;
        }
        for (const Entry& e : t) {
            put32(out, e.hash);
            put32(out, e.pos);
        }
        checked32(out.size());
    }
    return out;
}

std::optional<std::string> cdb_find_in(std::string_view cdb, std::string_view key) {
    return find(
        [&](uint32_t pos, uint32_t len) {
            if (pos > cdb.size() || len > cdb.size() - pos) throw std::runtime_error("cdb: truncated");
            return std::string(cdb.substr(pos, len));
        },
        key);
}

std::optional<std::string> cdb_find(const std::string& path, std::string_view key) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return std::nullopt;
        throw SysError("open " + path, errno);
    }
    Fd guard(fd);
    return find(
        [&](uint32_t pos, uint32_t len) {
            std::string buf(len, '\0');
            size_t done = 0;
            while (done < len) {
                ssize_t n = ::pread(fd, buf.data() + done, len - done, static_cast<off_t>(pos) + done);
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) throw SysError("read " + path, errno);
                if (n == 0) throw std::runtime_error(path + ": truncated cdb file");
                done += static_cast<size_t>(n);
            }
            return buf;
        },
        key);
}

}  // namespace yubin
