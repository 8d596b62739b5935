# A small implementation of OpenWrt's uci over one config file, for the
# test harness (see stubs/bin/uci). Variables: op, file (unused here; the
# file is the input), pkg, sec, opt, val, typ. Output: the answer (get,
# add, export) or, for changes, the new file on stdout after a line
# "@@FILE@@". Exit 1: entry not found / bad request.

function tokens(line,    n, i, c, q, cur, intok) {
	n = 0; cur = ""; intok = 0; q = ""
	for (i = 1; i <= length(line); i++) {
		c = substr(line, i, 1)
		if (q != "") {
			if (c == q) { q = ""; continue }
			if (q == "\"" && c == "\\" && i < length(line)) { i++; cur = cur substr(line, i, 1); continue }
			cur = cur c; continue
		}
		if (c == "'" || c == "\"") { q = c; intok = 1; continue }
		if (c == " " || c == "\t") {
			if (intok) { TOK[++n] = cur; cur = ""; intok = 0 }
			continue
		}
		if (c == "#" && !intok) break
		if (c == "\\" && i < length(line)) { i++; cur = cur substr(line, i, 1); intok = 1; continue }
		cur = cur c; intok = 1
	}
	if (intok) TOK[++n] = cur
	return n
}

function quote(s) { gsub(/'/, "'\\''", s); return "'" s "'" }

function secname(i) { return N[i] != "" ? N[i] : sprintf("cfg%02xabcd", i) }

# find(ref): the index of the section ref names (name, cfgNNabcd or
# @type[idx]), 0 when none.
function find(ref,    t, idx, i, c, m) {
	if (substr(ref, 1, 1) == "@") {
		if (!match(ref, /\[-?[0-9]+\]$/)) return 0
		t = substr(ref, 2, RSTART - 2); idx = substr(ref, RSTART + 1, RLENGTH - 2) + 0
		c = 0
		for (i = 1; i <= ns; i++) if (!D[i] && T[i] == t) c++
		if (idx < 0) idx += c
		if (idx < 0 || idx >= c) return 0
		m = -1
		for (i = 1; i <= ns; i++) if (!D[i] && T[i] == t && ++m == idx) return i
		return 0
	}
	for (i = 1; i <= ns; i++) if (!D[i] && secname(i) == ref) return i
	return 0
}

function emit(withnames,    i, j, k, done) {
	for (i = 1; i <= ns; i++) {
		if (D[i]) continue
		printf "\nconfig %s", T[i]
		if (N[i] != "") printf " %s", quote(N[i])
		else if (withnames) printf " %s", quote(secname(i))
		printf "\n"
		split("", done)
		for (j = 1; j <= NO[i]; j++) {
			if (KD[i, j] || (K[i, j] in done)) continue
			if (!L[i, j]) { printf "\toption %s %s\n", K[i, j], quote(V[i, j]); continue }
			# A list's values stay together, as uci writes them.
			done[K[i, j]] = 1
			for (k = j; k <= NO[i]; k++)
				if (!KD[i, k] && K[i, k] == K[i, j]) printf "\tlist %s %s\n", K[i, k], quote(V[i, k])
		}
	}
}

{
	n = tokens($0)
	if (n == 0) next
	if (TOK[1] == "config") { ns++; T[ns] = TOK[2]; N[ns] = (n >= 3 ? TOK[3] : ""); NO[ns] = 0; next }
	if (TOK[1] == "package") next
	if ((TOK[1] == "option" || TOK[1] == "list") && ns > 0) {
		j = ++NO[ns]; K[ns, j] = TOK[2]; V[ns, j] = (n >= 3 ? TOK[3] : ""); L[ns, j] = (TOK[1] == "list")
		next
	}
	printf "uci: parse error on line %d: %s\n", NR, $0 > "/dev/stderr"; bad = 1; exit 1
}

END {
	if (bad) exit 1
	if (op == "export") { printf "package %s\n", pkg; emit(1); exit 0 }
	if (op == "add") {
		ns++; T[ns] = typ; N[ns] = ""; NO[ns] = 0
		print secname(ns); print "@@FILE@@"; emit(0); exit 0
	}
	i = find(sec)
	if (op == "get") {
		if (!i) exit 1
		if (opt == "") { print T[i]; exit 0 }
		out = ""; found = 0
		for (j = 1; j <= NO[i]; j++) if (K[i, j] == opt) { out = out (found ? " " : "") V[i, j]; found = 1 }
		if (!found) exit 1
		print out; exit 0
	}
	if (op == "set" && opt == "") {
		if (i) T[i] = val
		else { ns++; T[ns] = val; N[ns] = sec; NO[ns] = 0 }
		print "@@FILE@@"; emit(0); exit 0
	}
	if (!i) exit 1
	if (op == "set" || op == "add_list") {
		first = 0
		for (j = 1; j <= NO[i]; j++) {
			if (K[i, j] != opt || KD[i, j]) continue
			if (op == "add_list") { L[i, j] = 1; continue }
			if (!first) { first = j; V[i, j] = val; L[i, j] = 0 } else KD[i, j] = 1
		}
		if (!first) { j = ++NO[i]; K[i, j] = opt; V[i, j] = val; L[i, j] = (op == "add_list") }
		print "@@FILE@@"; emit(0); exit 0
	}
	if (op == "delete") {
		if (opt == "") D[i] = 1
		else {
			found = 0
			for (j = 1; j <= NO[i]; j++) if (K[i, j] == opt && !KD[i, j]) { KD[i, j] = 1; found = 1 }
			if (!found) exit 1
		}
		print "@@FILE@@"; emit(0); exit 0
	}
	exit 1
}
