package collector

import (
	"context"
	"errors"
	"fmt"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/mem"
	psnet "github.com/shirou/gopsutil/v4/net"
)

// readSystemMetrics gathers host CPU, memory and interface totals through
// gopsutil. CPU is the busy percentage since the previous call (gopsutil keeps
// the last sample; the first call measures since the package was loaded).
// Interface counters are summed over all interfaces, loopback included.
// gopsutil reads HOST_PROC (see ProcRootFromEnv) or a common.EnvMap in ctx.
// A failing part is named in the error while the others are still filled.
func readSystemMetrics(ctx context.Context) (SystemMetrics, error) {
	var m SystemMetrics
	var errs []error
	if pct, err := cpu.PercentWithContext(ctx, 0, false); err != nil {
		errs = append(errs, fmt.Errorf("cpu percent: %w", err))
	} else if len(pct) > 0 {
		m.CPUPercent = pct[0]
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("virtual memory: %w", err))
	} else {
		m.MemoryPercent = vm.UsedPercent
	}
	if io, err := psnet.IOCountersWithContext(ctx, false); err != nil {
		errs = append(errs, fmt.Errorf("interface counters: %w", err))
	} else if len(io) > 0 {
		all := io[0]
		m.BytesSent, m.BytesRecv = all.BytesSent, all.BytesRecv
		m.PacketsSent, m.PacketsRecv = all.PacketsSent, all.PacketsRecv
		m.ErrIn, m.ErrOut = all.Errin, all.Errout
		m.DropIn, m.DropOut = all.Dropin, all.Dropout
	}
	return m, errors.Join(errs...)
}
