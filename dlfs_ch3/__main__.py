from dlfs_ch3.cli import main

main()
