module certlb/bench/loadgen

go 1.19
