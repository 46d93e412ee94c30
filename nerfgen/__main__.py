from nerfgen.cli import main

main()
