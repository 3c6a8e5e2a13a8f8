module github.com/lwota/lwota

go 1.26.8
