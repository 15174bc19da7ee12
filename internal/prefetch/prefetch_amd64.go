package prefetch

func hasWrite() bool
