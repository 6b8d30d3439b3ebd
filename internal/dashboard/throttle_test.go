package dashboard

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoginThrottle(t *testing.T) {
	known := func(id string) bool { return id == "AKIDADMIN" }
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	t.Run("an address's failures throttle it, not others", func(t *testing.T) {
		th := newLoginThrottle(known)
		for range addrBurst {
			ok, _ := th.allow("10.0.0.1", "AKIDADMIN", now)
			require.True(t, ok)
			th.failed("10.0.0.1", "AKIDADMIN", now)
		}
		ok, why := th.allow("10.0.0.1", "AKIDADMIN", now)
		require.False(t, ok)
		require.Equal(t, "address", why)
		ok, _ = th.allow("10.0.0.2", "AKIDADMIN", now)
		require.True(t, ok, "another address may still log in")
		ok, _ = th.allow("10.0.0.1", "AKIDADMIN", now.Add(time.Second))
		require.True(t, ok, "the budget refills")
	})

	t.Run("correct logins spend nothing", func(t *testing.T) {
		th := newLoginThrottle(known)
		for range 10 * addrBurst {
			ok, _ := th.allow("10.0.0.1", "AKIDADMIN", now)
			require.True(t, ok)
		}
	})

	t.Run("a key's failures from many addresses throttle those addresses only", func(t *testing.T) {
		th := newLoginThrottle(known)
		for i := range keyFailBurst {
			th.failed("10.1.0."+strconv.Itoa(i), "AKIDADMIN", now)
		}
		ok, why := th.allow("10.1.0.1", "AKIDADMIN", now)
		require.False(t, ok)
		require.Equal(t, "key", why)
		ok, _ = th.allow("10.2.0.1", "AKIDADMIN", now)
		require.True(t, ok, "an address that has not failed may try the key")
		ok, _ = th.allow("10.1.0.1", "AKIDOTHER", now)
		require.True(t, ok, "unknown ids share their own budget")
	})

	t.Run("bounded", func(t *testing.T) {
		th := newLoginThrottle(known)
		for i := range maxAddrs + 500 {
			th.failed("addr-"+strconv.Itoa(i), "AKIDGUESS"+strconv.Itoa(i), now)
		}
		require.LessOrEqual(t, len(th.addrs), maxAddrs+1)
		require.Len(t, th.keys, 1, "made-up key ids share one entry")
		// Once idle long enough, old addresses make room again.
		th.failed("late", "AKIDADMIN", now.Add(2*failMemory))
		require.Contains(t, th.addrs, "late")
		require.Less(t, len(th.addrs), maxAddrs)
	})
}
