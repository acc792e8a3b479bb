package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// ErrNotEffective is wrapped by the error for a key set away from its default while its feature has not
// landed (SPEC §6: never silently ignored).
var ErrNotEffective = errors.New("not yet effective in this version; leave it at its default")

// feature is how far a key's feature has landed.
type feature struct {
	effective bool
	// at, when not nil, lists the only values (as fmt.Sprint prints them) at which the key takes effect;
	// effective is then ignored. (No key needs it today; a feature that lands value by value sets it.)
	at []string
}

// features is the one table of feature status: key path -> status. A key not listed is effective. Flip an
// entry (delete it, or set effective) when its feature lands; TestFeatureKeysExist keeps the keys honest.
// It is built per call so that nobody can change it at run time.
func features() map[string]feature {
	// Every key takes effect in this version. A key added before its feature lands is listed here as
	// feature{effective: false} until it does.
	return map[string]feature{}
}

// effectiveAt reports whether the key takes effect at value v.
func (f feature) effectiveAt(v reflect.Value) bool {
	if f.at != nil {
		return slices.Contains(f.at, fmt.Sprint(v.Interface()))
	}
	return f.effective
}

// NotEffective lists, in file order, the keys whose current value does not take effect in this version
// (`msrpgw check` prints them). Validate has made sure each is at its default.
func (c *Config) NotEffective() []string { return c.notEffectiveIn(features()) }

func (c *Config) notEffectiveIn(table map[string]feature) []string {
	var keys []string
	for _, key := range schemaKeys() {
		f, listed := table[key]
		if !listed {
			continue
		}
		v, ok := lookup(c, key)
		if ok && !f.effectiveAt(v) {
			keys = append(keys, key)
		}
	}
	return keys
}

// effectiveNote describes a partly effective key for Describe, e.g. "effective only at: accept".
func effectiveNote(key string) string {
	f := features()[key]
	if f.at == nil {
		return ""
	}
	return "effective only at: " + strings.Join(f.at, ", ")
}

// checkEffective refuses keys set away from their default where the new value does not take effect.
func (c *Config) checkEffective(def *Config, refused func(key string) bool) []error {
	return c.checkEffectiveIn(features(), def, refused)
}

func (c *Config) checkEffectiveIn(table map[string]feature, def *Config, refused func(key string) bool) []error {
	var errs []error
	for _, key := range schemaKeys() {
		f, listed := table[key]
		if !listed {
			continue
		}
		v, ok := lookup(c, key)
		d, dok := lookup(def, key)
		if !ok || !dok || f.effectiveAt(v) || sameValue(v, d) || refused(key) {
			continue
		}
		err := fmt.Errorf("%w (%s)", ErrNotEffective, fmt.Sprint(d.Interface()))
		if f.at != nil {
			err = fmt.Errorf("%v is %w (%s), or use %s", v.Interface(), ErrNotEffective, fmt.Sprint(d.Interface()), strings.Join(f.at, " or "))
		}
		errs = append(errs, c.pos.keyError(key, err))
	}
	return errs
}

// sameValue compares two values of one key; an empty list equals a missing one.
func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}
