// A directory under /tmp (mkdtemp) for one test, removed with its contents
// when the test ends, and small helpers for looking at files in it.
#pragma once
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace yubin::test {

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/yubin-unit.XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

private:
    std::string path_;
};

// The names in a directory, sorted, without "." and "..".
inline std::vector<std::string> dir_entries(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) throw std::runtime_error("opendir " + dir);
    while (struct dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

// The permission bits of a file, or -1 if it cannot be stat()ed.
inline int file_mode(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) < 0) return -1;
    return static_cast<int>(st.st_mode & 07777);
}

inline bool is_dir(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The process umask (set back immediately).
inline mode_t current_umask() {
    mode_t m = ::umask(022);
    ::umask(m);
    return m;
}

}  // namespace yubin::test
