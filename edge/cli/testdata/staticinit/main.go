// Command staticinit stands in for bootenv in tests that build an
// initramfs but never boot it.
package main

func main() {}
