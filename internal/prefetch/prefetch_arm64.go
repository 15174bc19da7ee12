package prefetch

func hasWrite() bool { return true } // PRFM PSTL1KEEP is in every ARMv8
