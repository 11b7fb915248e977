// Package noderange reads and writes node sets in the xCAT/ClusterShell
// style that HPC admins type wherever a set of nodes is named:
//
//	node[001-128],gpu[01-04],cpu7
//	rack[1-2]n[01-02],-rack2n02
//	@compute,-@drained,login1
//
// The grammar, in byte positions of the input:
//
//	range  = term { "," term }
//	term   = [ "-" ] ( "@" group | name )
//	group  = word
//	name   = ( alnum | set ) { namechar | set }
//	set    = "[" item { "," item } "]"
//	item   = number [ "-" number ]
//	number = digit { digit }             (at most 9 digits)
//	word   = alnum { namechar }
//	namechar = letter | digit | "-" | "_" | "."
//
// Terms are applied left to right: a plain term adds its names, a term
// starting with "-" removes them. The result keeps the order in which names
// first appeared, without duplicates; a name removed and added again moves
// to the end.
//
// Several sets in one name form a cartesian product, leftmost set slowest:
// rack[1-2]n[01-02] is rack1n01 rack1n02 rack2n01 rack2n02.
//
// Padding: each item of a set takes its width from the lower bound as
// written. A lower bound with a leading zero ("001") pads every number of
// the item to that many digits; any other lower bound ("1", "10", "0") does
// not pad. The upper bound's spelling never matters, so [01-100] is 01 … 99,
// 100 and [1-010] is 1 … 10. Numbers wider than the padding are written in
// full.
//
// The package does no I/O: groups are looked up through a Resolver the
// caller supplies, and expansion refuses to generate more names than a
// limit (DefaultLimit unless the caller says otherwise), checked before
// anything is generated.
package noderange
