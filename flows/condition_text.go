package flows

import "strings"

// words renders the condition for a person reading a finding: the catalog's compact
// syntax ("!COD_PDR", "STATO_INCASSO=I|P&SETTORE") means nothing to the billing
// clerk who has to fix the row. Terms are joined by "and" (the grammar has only '&');
// the alternatives of one term by "or" ("nor" when negated).
func (c *condition) words() string {
	parts := make([]string, len(c.terms))
	for i, t := range c.terms {
		parts[i] = t.words()
	}
	return strings.Join(parts, " and ")
}

func (t condTerm) words() string {
	switch {
	case t.values == nil && t.negate:
		return t.name + " is empty"
	case t.values == nil:
		return t.name + " is set"
	case t.negate && len(t.values) == 1:
		return t.name + " is not " + quoteValue(t.values[0])
	case t.negate:
		return t.name + " is neither " + alternatives(t.values, "nor")
	default:
		return t.name + " is " + alternatives(t.values, "or")
	}
}

// alternatives lists values as "A", "A or B", "A, B or C".
func alternatives(values []string, conj string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = quoteValue(v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " " + conj + " " + q[len(q)-1]
}

// quoteValue shows an empty value as "empty" rather than as nothing; other values are
// codes (E, 0, AN-99) and read fine bare.
func quoteValue(v string) string {
	if v == "" {
		return "empty"
	}
	return v
}

// ConditionText renders a catalog When expression in words ("COD_PDR is empty",
// "VERIFICA_AMM is 0", "STATO_INCASSO is I or P"), for messages and listings shown
// to people. It does not check field names against a flow; an expression with an
// empty term is returned unchanged.
func ConditionText(expr string) string {
	index := map[string]int{}
	for _, part := range strings.Split(expr, "&") {
		name := strings.TrimSpace(part)
		if i := strings.IndexAny(name, "!="); i > 0 {
			name = name[:i]
		}
		index[strings.TrimSpace(strings.TrimPrefix(name, "!"))] = 0
	}
	c, err := parseCondition(expr, index)
	if err != nil {
		return expr
	}
	return c.words()
}
