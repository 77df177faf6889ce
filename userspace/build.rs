//! Gives libnicclock.so a SONAME (its own file name, no version suffix: the page ABI is versioned
//! inside the page, and C programs link it as -lnicclock), as a shared library in a system directory needs.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnicclock.so");
}
